"""A template sent from the console in Chromium once the 24-hour window has closed: the agent
picks an approved template, fills its variables, watches the preview follow, sends; the
thread shows the text the customer reads with its template label, and the fake Graph API
received the template. Screenshots in artifacts/screenshots/."""

import json

import pytest
from django.utils import timezone

from conversations.models import Message, MessageStatus, MessageType
from conversations.templatesync import templates_sync
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.conftest import MESSAGES_PATH
from tests.conversations.factories import ChannelFactory, ConversationFactory, MessageFactory, UserFactory
from tests.conversations.test_media_out import MEDIA_PATH, PNG
from tests.conversations.test_templates import WABA, example, page_two, serve_listing

DESKTOP = {"width": 1440, "height": 900}

pytestmark = BROWSER_TEST


@pytest.fixture
def window_closed(transactional_db, graph_api):
    """A customer who last wrote two days ago, and the account's templates synced."""
    channel = ChannelFactory(business_account_id=WABA)
    serve_listing(graph_api, [example("Templates page 1"), page_two()])
    templates_sync(channel=channel)
    graph_api.clear()
    two_days_ago = timezone.now() - timezone.timedelta(days=2)
    conversation = ConversationFactory(
        channel=channel, profile__wa_id="16505551234", profile__profile_name="Giulia Russo", profile__language="en",
        last_inbound_at=two_days_ago, last_message_at=two_days_ago,
    )  # fmt: skip
    MessageFactory(conversation=conversation, text="Is my order on its way?", created_at=two_days_ago)
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json({"messages": [{"id": "wamid.template-browser"}]})
    return conversation


def test_staff_send_a_template_outside_the_window_and_the_thread_shows_its_text(
    browser_context, live_server, session_login, window_closed, graph_api, eager_worker
):
    from playwright.sync_api import expect

    context = browser_context(viewport=DESKTOP)
    session_login(context, UserFactory(username="anna", first_name="Anna"))
    page = context.new_page()
    page.goto(f"{live_server.url}/console/c/{window_closed.pk}/")

    expect(page.locator(".composer-closed")).to_be_visible()
    page.locator("[data-testid=template-choice]").select_option(label="order_confirmation (en_US) · Utility")
    expect(page.locator("#template-send-form")).to_have_attribute("data-template", "order_confirmation")
    preview = page.locator("[data-testid=template-preview]")
    expect(preview).to_contain_text("Thank you {{1}}!")
    page.fill("input[name='header.1']", "A-1042")
    page.fill("input[name='body.1']", "Giulia")
    page.fill("input[name='body.2']", "A-1042")
    page.fill("input[name='body.3']", "Monday")
    page.fill("input[name='button.0']", "A-1042")
    expect(preview).to_contain_text("Thank you Giulia! Your order A-1042 ships on Monday.")
    screenshot(page, "console-template-form.png")

    page.locator("[data-action=send-template]").click()

    bubble = page.locator(".msg-row.type-template").last
    expect(bubble).to_contain_text("Thank you Giulia! Your order A-1042 ships on Monday.", timeout=5000)
    expect(bubble.locator("[data-testid=template-label]")).to_contain_text("order_confirmation (en_US)")
    expect(bubble.locator(".tick")).to_have_attribute("data-status", "sent", timeout=5000)
    expect(page.locator("#template-send-form")).to_have_count(0)  # a fresh composer
    screenshot(page, "console-template-sent.png")

    message = Message.objects.get(type=MessageType.TEMPLATE)
    assert message.status == MessageStatus.SENT and message.wamid == "wamid.template-browser"
    [sent] = [json.loads(r.get_data()) for r, _ in graph_api.log if r.path == MESSAGES_PATH]
    assert sent["template"]["name"] == "order_confirmation" and sent["template"]["components"][1]["parameters"][0] == {"type": "text", "text": "Giulia"}


def test_staff_attach_the_header_image_the_preview_names_it_and_the_thread_shows_it(
    browser_context, live_server, session_login, window_closed, graph_api, eager_worker
):
    from playwright.sync_api import expect

    graph_api.expect_request(MEDIA_PATH, method="POST").respond_with_json({"id": "media.browser"})
    context = browser_context(viewport=DESKTOP)
    session_login(context, UserFactory(username="anna", first_name="Anna"))
    page = context.new_page()
    page.goto(f"{live_server.url}/console/c/{window_closed.pk}/")

    page.locator("[data-testid=template-choice]").select_option(label="reservation_confirmation (en_US) · Utility")
    expect(page.locator("#template-send-form")).to_have_attribute("data-template", "reservation_confirmation")
    page.locator("input[name='header.file']").set_input_files({"name": "tavolo.png", "mimeType": "image/png", "buffer": PNG})
    for name, value in (("number_of_guests", "4"), ("day", "Saturday"), ("date", "30 August"), ("time", "19:30")):
        page.fill(f"input[name='body.{name}']", value)
    preview = page.locator("[data-testid=template-preview]")
    expect(preview.locator("[data-testid=template-preview-file]")).to_have_text("tavolo.png")
    expect(preview).to_contain_text("Your reservation for 4")
    screenshot(page, "console-template-file-form.png")

    page.locator("[data-action=send-template]").click()

    bubble = page.locator(".msg-row.type-template").last
    expect(bubble.locator(".tick")).to_have_attribute("data-status", "sent", timeout=5000)
    image = bubble.locator("img.media-thumb")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 40  # our copy, served to staff
    screenshot(page, "console-template-file-sent.png")

    [upload] = [r for r, _ in graph_api.log if r.path == MEDIA_PATH]
    assert upload.files["file"].read() == PNG
    [sent] = [json.loads(r.get_data()) for r, _ in graph_api.log if r.path == MESSAGES_PATH]
    assert sent["template"]["components"][0] == {"type": "header", "parameters": [{"type": "image", "image": {"id": "media.browser"}}]}
    assert Message.objects.get(type=MessageType.TEMPLATE).status == MessageStatus.SENT
