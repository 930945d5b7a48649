"""Two roles. Agents (staff users) work in the console: read every thread, reply, take
over, edit client profiles. Admins (superusers, or members of the "Admins" group) also
reach Django admin: channels, bot configurations, users."""

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
