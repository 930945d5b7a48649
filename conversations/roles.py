"""Two roles. Agents (staff users) work in the console: read every thread, reply, take
over, edit client profiles. Admins (superusers, or members of the "Admins" group) also
reach Django admin: channels, bot configurations, users."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

ADMINS_GROUP = "Admins"
AGENTS_GROUP = "Agents"


def is_agent(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def is_admin(user) -> bool:
    if not is_agent(user):
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=ADMINS_GROUP).exists()


def role_groups_ensure() -> None:
    """Create the two groups (idempotent). Admins get every model permission, so a
    non-superuser admin can work in Django admin; agents need none (the console checks
    `is_staff`). Run by `manage.py bootstrap` after each migrate, so new models are covered."""
    admins, _ = Group.objects.get_or_create(name=ADMINS_GROUP)
    Group.objects.get_or_create(name=AGENTS_GROUP)
    admins.permissions.set(Permission.objects.all())


def staff_member_create(*, username: str, password: str, email: str = "", first_name: str = "", last_name: str = "", role: str = AGENTS_GROUP):
    """A console user: staff, in the group of `role` ("Agents" or "Admins")."""
    if role not in (ADMINS_GROUP, AGENTS_GROUP):
        raise ValueError(f"unknown role {role!r}")
    role_groups_ensure()
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, password=password, email=email, first_name=first_name, last_name=last_name, is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
    return user
