"""Who reaches what: every console URL needs a staff login; only admins reach Django admin."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from profiles.models import StaffPreference

from .conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

# Pages anyone may open: the way in, the way out, the login page's language switch.
PUBLIC = {"console:login", "console:logout", "console:language"}


def _console_patterns():
    resolver = get_resolver().namespace_dict["console"][1]
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLPattern) and pattern.name:
            yield pattern
        elif isinstance(pattern, URLResolver):  # pragma: no cover - nothing nested today
            raise AssertionError("update the console URL walk for nested includes")


def _url(pattern, conversation) -> str:
    kwargs = {}
    for name, converter in pattern.pattern.converters.items():
        kwargs[name] = conversation.pk if converter.__class__.__name__ == "IntConverter" else "email"
    return reverse(f"console:{pattern.name}", kwargs=kwargs)


def every_console_url(conversation):
    return [(p.name, _url(p, conversation)) for p in _console_patterns() if f"console:{p.name}" not in PUBLIC]


def test_the_walk_covers_every_page_of_the_console(conversation):
    names = {name for name, _ in every_console_url(conversation)}
    assert {"inbox", "list", "list_poll", "thread", "thread_poll", "thread_older", "reply", "take_over", "hand_back"} <= names
    assert {"resolve", "reopen", "assign", "note_add", "profile_field"} <= names


def test_an_anonymous_visitor_is_sent_to_the_login_page_from_every_console_url(client, conversation):
    for name, url in every_console_url(conversation):
        responses = [client.get(url), client.post(url)]
        # The method the page takes redirects to the login; the other may be a bare 405.
        assert all(r.status_code in (302, 405) for r in responses), (name, [r.status_code for r in responses])
        redirects = [r for r in responses if r.status_code == 302]
        assert redirects, name
        assert all(r["Location"].startswith("/console/login/?next=") for r in redirects), name


def test_an_anonymous_htmx_poll_redirects_the_whole_page_to_the_login(client, conversation):
    response = client.get(
        reverse("console:thread_poll", args=[conversation.pk]) + "?rev=0",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver/console/c/{conversation.pk}/",
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/console/login/?next=/console/c/{conversation.pk}/"


def test_a_logged_in_user_who_is_not_staff_gets_403_from_every_console_url(customer_user, conversation):
    client = client_for(customer_user)
    for name, url in every_console_url(conversation):
        codes = [client.get(url).status_code, client.post(url).status_code]
        assert set(codes) <= {403, 405} and 403 in codes, (name, codes)


def test_an_agent_can_use_every_console_url(agent_client, conversation):
    for name, url in every_console_url(conversation):
        response = agent_client.get(url, {"rev": 0, "before": 10**9}, HTTP_HX_REQUEST="true")
        # A media URL names a message whose file is stored: here none is, so 404 (no bytes).
        allowed = (200, 204, 405, 404) if name == "media" else (200, 204, 405)
        assert response.status_code in allowed, (name, response.status_code)


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/conversations/channel/", "/admin/conversations/botconfig/", "/admin/auth/user/"]
)
def test_an_agent_cannot_reach_django_admin_channels_or_prompt_settings(agent_client, url):
    response = agent_client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ["/admin/", "/admin/conversations/channel/", "/admin/conversations/botconfig/"])
def test_an_admin_reaches_django_admin(console_admin, url):
    assert client_for(console_admin).get(url).status_code == 200


def test_the_console_links_to_admin_only_for_admins(agent_client, console_admin):
    assert b'href="/admin/"' not in agent_client.get("/console/").content
    assert b'href="/admin/"' in client_for(console_admin).get("/console/").content


def test_an_agent_logs_in_with_a_password_and_lands_on_the_console(client, agent):
    response = client.post("/console/login/", {"username": "anna", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_a_user_who_is_not_staff_cannot_log_in_to_the_console(client, customer_user):
    response = client.post("/console/login/", {"username": "outsider", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_login_attempts_are_rate_limited(client, agent, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/console/login/", {"username": "anna", "password": "wrong"}).status_code == 200
    assert client.post("/console/login/", {"username": "anna", "password": "wrong"}).status_code == 429
    # Locked out now, even with the right password.
    response = client.post("/console/login/", {"username": "anna", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_italian_is_the_default_language_and_each_agent_chooses_their_own(client, agent):
    client.post("/console/login/", {"username": "anna", "password": PASSWORD})
    assert "Conversazioni" in client.get("/console/").content.decode()

    response = client.post("/console/language/", {"language": "en", "next": "/console/"})
    assert response.status_code == 302
    assert StaffPreference.objects.get(user=agent).language == "en"
    assert "Conversations" in client.get("/console/").content.decode()

    # A new browser: the preference comes back at login.
    other = type(client)()
    other.post("/console/login/", {"username": "anna", "password": PASSWORD})
    assert "Conversations" in other.get("/console/").content.decode()


def test_the_language_switch_refuses_to_redirect_elsewhere(agent_client):
    response = agent_client.post("/console/language/", {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == "/console/"


def test_pages_carry_the_csrf_token_for_htmx_and_no_channel_secrets(agent_client, conversation):
    body = agent_client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert conversation.channel.access_token not in body
    assert conversation.channel.app_secret not in body
