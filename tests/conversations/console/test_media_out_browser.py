"""Media out and reactions in Chromium: staff attach a PNG in the composer (its name and size
shown, removable), write a caption and send it; the thread shows the image bubble with the
caption and its tick moving from pending to sent to delivered. Staff react to a customer's
message and take the reaction away. Screenshots go to artifacts/screenshots/."""

import json
import time

import pytest

from conversations.models import Author, Message, MessageStatus, MessageType
from integrations.meta.signature import HEADER, sign
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.conftest import deliver
from tests.conversations.factories import APP_SECRET, PHONE_NUMBER_ID
from tests.conversations.test_media_out import FakeMeta, png
from webhooks.services import webhook_receive

from .test_console_browser import DESKTOP, customer_writes, desk, log_in  # noqa: F401 (fixtures)

pytestmark = BROWSER_TEST


@pytest.fixture
def meta(graph_api):
    fake = FakeMeta(graph_api)
    yield fake
    assert not fake.problems, fake.problems


def status_arrives(wamid: str, status: str) -> None:
    """A delivery status through the real webhook service, signed like Meta signs it."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{"id": wamid, "status": status, "timestamp": str(int(time.time())), "recipient_id": "16505551234"}],
        }}]}],
    }  # fmt: skip
    body = json.dumps(payload).encode()
    assert webhook_receive(body=body, headers={HEADER: sign(body, APP_SECRET)}).status == 200


def test_staff_attach_a_png_with_a_caption_and_the_thread_shows_the_image_bubble_with_its_tick(browser, live_server, desk, meta, tmp_path):
    from playwright.sync_api import expect

    picture = tmp_path / "scontrino.png"
    picture.write_bytes(png(320, 200, (37, 211, 102)))
    conversation = desk["conversation"]
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")

    # Chosen: its name and size show, and it can be taken away again.
    page.set_input_files("#composer-file", str(picture))
    chip = page.locator("#composer-attachment")
    expect(chip).to_be_visible()
    expect(chip).to_contain_text("scontrino.png")
    expect(page.locator("#composer-attachment-size")).to_contain_text("B")
    page.click("#composer-attachment-remove")
    expect(chip).to_be_hidden()
    assert page.locator("#composer-file").evaluate("input => input.files.length") == 0

    page.set_input_files("#composer-file", str(picture))
    page.fill("#composer-text", "Ecco lo scontrino del suo ordine")
    screenshot(page, "console-media-out-attached.png")
    page.locator("#composer-text").press("Enter")

    bubble = page.locator(".msg-row.author-staff.type-image").last
    expect(bubble).to_contain_text("Ecco lo scontrino del suo ordine", timeout=3000)
    expect(bubble.locator(".tick")).to_have_attribute("data-status", "pending")
    expect(chip).to_be_hidden()  # the composer is empty again
    expect(page.locator("#composer-text")).to_have_value("")

    message = Message.objects.get(author=Author.STAFF)
    assert (message.type, message.text) == (MessageType.IMAGE, "Ecco lo scontrino del suo ordine")
    assert deliver(message.pk) == "sent"  # what the Celery task runs: upload, then send
    assert meta.uploads[0]["filename"] == "scontrino.png" and meta.sends[0]["image"]["caption"] == "Ecco lo scontrino del suo ordine"
    expect(bubble.locator(".tick")).to_have_attribute("data-status", "sent", timeout=3000)

    status_arrives(Message.objects.get(pk=message.pk).wamid, "delivered")
    expect(bubble.locator(".tick")).to_have_attribute("data-status", "delivered", timeout=3000)
    screenshot(page, "console-media-out-image-sent.png")


def test_a_file_whatsapp_does_not_take_is_refused_in_the_flash_area(browser, live_server, desk, tmp_path):
    from playwright.sync_api import expect

    program = tmp_path / "listino.pdf"
    program.write_bytes(b"MZ\x90\x00" + b"\x00" * 64)  # not a PDF, whatever its name says
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/console/c/{desk['conversation'].pk}/")
    page.set_input_files("#composer-file", str(program))
    page.click("button.send")

    # In the console's language (Italian here), naming the file.
    expect(page.locator("#flash .alert.error")).to_contain_text("listino.pdf non si può inviare su WhatsApp")
    assert not Message.objects.filter(author=Author.STAFF).exists()
    screenshot(page, "console-media-out-refused.png")


def test_staff_react_to_a_customer_message_and_take_the_reaction_away(browser, live_server, desk, meta):
    from playwright.sync_api import expect

    conversation = desk["conversation"]
    customer = Message.objects.filter(conversation=conversation, author=Author.CUSTOMER).first()
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    row = page.locator(f"#msg-{customer.pk}")
    row.hover()
    row.locator("details.react > summary").click()
    screenshot(page, "console-reaction-menu.png")
    row.locator("button.react-emoji", has_text="👍").click()

    expect(row.locator('.reactions [data-author="staff"]')).to_have_text("👍", timeout=3000)
    reaction = Message.objects.get(type=MessageType.REACTION)
    assert deliver(reaction.pk) == "sent"
    assert meta.sends[-1]["reaction"] == {"message_id": customer.wamid, "emoji": "👍"}
    expect(row.locator('.reactions [data-author="staff"]')).to_have_attribute("data-status", "sent", timeout=3000)
    screenshot(page, "console-reaction-sent.png")

    row.locator("details.react > summary").click()
    row.locator("button.react-remove").click()
    expect(row.locator('.reactions [data-author="staff"]')).to_have_count(0, timeout=3000)
    removal = Message.objects.filter(type=MessageType.REACTION).latest("pk")
    assert removal.text == "" and removal.status == MessageStatus.PENDING
