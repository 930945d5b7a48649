import pytest
from django.contrib.auth.models import Group

from tests.conversations.factories import UserFactory
from conversations.roles import ADMINS_GROUP, AGENTS_GROUP, role_groups_ensure


@pytest.fixture
def roles(db):
    role_groups_ensure()


@pytest.fixture
def admin_member(roles):
    """An admin by group membership (not a superuser): the role as the issue defines it."""
    user = UserFactory(username="alice-admin")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    return user


@pytest.fixture
def agent(roles):
    user = UserFactory(username="bob-agent")
    user.groups.add(Group.objects.get(name=AGENTS_GROUP))
    return user


@pytest.fixture
def admin_member_client(client, admin_member):
    # Italian is the default; the assertions read English texts.
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(admin_member)
    return client
