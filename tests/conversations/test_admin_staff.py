import pytest
from django.contrib.auth import get_user_model

from conversations.roles import is_admin, is_agent

pytestmark = pytest.mark.django_db


def _add(client, **overrides):
    data = {
        "username": "carla",
        "first_name": "Carla",
        "last_name": "Rossi",
        "email": "carla@example.com",
        "role": "Agents",
        "password1": "a-long-unusual-passphrase-42",
        "password2": "a-long-unusual-passphrase-42",
    }
    data.update(overrides)
    return client.post("/admin/auth/user/add/", data)


def test_an_admin_creates_an_agent_in_one_form(admin_member_client):
    response = _add(admin_member_client)

    assert response.status_code == 302
    user = get_user_model().objects.get(username="carla")
    assert response["Location"] == f"/admin/auth/user/{user.pk}/change/"
    assert is_agent(user) and not is_admin(user)
    assert list(user.groups.values_list("name", flat=True)) == ["Agents"]
    assert user.check_password("a-long-unusual-passphrase-42")


def test_an_admin_creates_another_admin_by_choosing_the_role(admin_member_client):
    _add(admin_member_client, username="dario", role="Admins")

    user = get_user_model().objects.get(username="dario")
    assert is_admin(user) and not user.is_superuser


def test_the_new_agent_can_log_in_but_not_reach_admin(admin_member_client, client, rf):
    from django.contrib.auth import authenticate

    _add(admin_member_client)

    user = authenticate(rf.post("/console/login/"), username="carla", password="a-long-unusual-passphrase-42")
    assert user is not None
    client.force_login(user)
    assert client.get("/admin/").status_code == 302


def test_the_user_list_shows_roles_without_a_query_per_user(admin_member_client, django_assert_max_num_queries, agent_member):
    from tests.conversations.factories import UserFactory

    for n in range(40):
        UserFactory(username=f"extra{n}")

    with django_assert_max_num_queries(12):
        response = admin_member_client.get("/admin/auth/user/")

    assert response.status_code == 200
    assert "Agent" in response.content.decode()
