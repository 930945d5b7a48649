"""Admin pages in Chromium, for the screenshots (artifacts/screenshots/admin-*.png) and to see
that the secret fields stay empty in a real browser (no autofill of a stored value)."""

import pytest
from django.contrib.auth.models import Group

from conversations.models import ConversationNote
from profiles.services import profile_field_set
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from webhooks.models import WebhookEvent
from conversations.roles import ADMINS_GROUP, role_groups_ensure

pytestmark = BROWSER_TEST


@pytest.fixture
def admin_page(transactional_db, live_server, browser_context, session_login):
    role_groups_ensure()
    user = UserFactory(username="alice-admin", first_name="Alice")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    context = browser_context(viewport={"width": 1280, "height": 900}, extra_http_headers={"Accept-Language": "en"})
    session_login(context, user)
    return context.new_page(), user


def _shot(page, name: str) -> None:
    screenshot(page, name, full_page=True)


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
