"""Admin pages in Chromium, for the screenshots (artifacts/screenshots/admin-*.png) and to see
that the secret fields stay empty in a real browser (no autofill of a stored value)."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth.models import Group

from conversations.models import ConversationNote
from profiles.services import profile_field_set
from tests.factories import ConversationFactory, MessageFactory, UserFactory
from webhooks.models import WebhookEvent
from whatsbot.roles import ADMINS_GROUP, role_groups_ensure

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def admin_page(transactional_db, live_server):
    from playwright.sync_api import sync_playwright

    role_groups_ensure()
    user = UserFactory(username="alice-admin", first_name="Alice")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", extra_http_headers={"Accept-Language": "en"})
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "url": live_server.url}])
        yield context.new_page(), user
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_admin_pages_render_with_their_data(admin_page, live_server, channel):
    page, admin = admin_page
    conversation = ConversationFactory(channel=channel, assigned_to=admin)
    asked = MessageFactory(conversation=conversation, text="Sono Mario Rossi di Acme, ordine ORD-5521")
    MessageFactory(conversation=conversation, direction="out", author="bot", status="read", text="Grazie Mario! Qual è la tua email?")
    ConversationNote.objects.create(conversation=conversation, author=admin, text="Cliente storico, trattare con priorità")
    for field, value in [("first_name", "Mario"), ("last_name", "Rossi"), ("company", "Acme"), ("order_number", "ORD-5521")]:
        profile_field_set(profile=conversation.profile, field=field, value=value, source="ai", message=asked)
    profile_field_set(profile=conversation.profile, field="email", value="mario@acme.it", source="staff", user=admin)
    WebhookEvent.objects.create(channel=channel, body='{"object": "whatsapp_business_account", "entry": []}', outcome="ignored", signature_valid=True)

    page.goto(f"{live_server.url}/admin/conversations/channel/{channel.pk}/change/")
    assert page.locator("#id_access_token").input_value() == ""
    assert page.locator("#id_app_secret").input_value() == ""
    assert channel.app_secret not in page.content()
    _shot(page, "admin-channel.png")

    page.goto(f"{live_server.url}/admin/conversations/conversation/{conversation.pk}/change/")
    assert "Qual è la tua email?" in page.content()
    _shot(page, "admin-conversation.png")

    page.goto(f"{live_server.url}/admin/profiles/clientprofile/{conversation.profile.pk}/change/")
    assert "by alice-admin" in page.content()
    _shot(page, "admin-profile.png")

    page.goto(f"{live_server.url}/admin/webhooks/webhookevent/")
    _shot(page, "admin-webhook-events.png")

    page.goto(f"{live_server.url}/admin/auth/user/add/")
    _shot(page, "admin-add-staff.png")
