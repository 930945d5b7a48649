import pytest

from tests.conversations.factories import UserFactory

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/conversations/channel/",
    "/admin/conversations/channel/add/",
    "/admin/conversations/conversation/",
    "/admin/conversations/message/",
    "/admin/conversations/quickreply/",
    "/admin/profiles/clientprofile/",
    "/admin/webhooks/webhookevent/",
    "/admin/auth/user/",
    "/admin/auth/user/add/",
]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_an_agent_cannot_reach_any_admin_page(client, agent_member, url):
    client.force_login(agent_member)

    response = client.get(url)

    # Django admin answers a logged-in user without permission with its login page.
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_an_agent_cannot_read_a_channel_by_its_url(client, agent_member, channel):
    client.force_login(agent_member)

    response = client.get(f"/admin/conversations/channel/{channel.pk}/change/", follow=True)

    assert channel.app_secret not in response.content.decode()
    assert response.redirect_chain[-1][0].startswith("/admin/login/")


def test_a_non_staff_user_cannot_reach_admin_even_as_an_admins_member(client, roles):
    from django.contrib.auth.models import Group

    user = UserFactory(username="not-staff", is_staff=False)
    user.groups.add(Group.objects.get(name="Admins"))
    client.force_login(user)

    assert client.get("/admin/").status_code == 302


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get("/admin/conversations/channel/")

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_an_admins_group_member_reaches_every_admin_page(admin_member_client, channel, url):
    assert admin_member_client.get(url).status_code == 200
