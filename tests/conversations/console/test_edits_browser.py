"""An edited and a deleted customer message in the console, in Chromium: Meta's `edit` and
`revoke` payloads (tests/fixtures/meta/) go through the signed webhook while an agent has the
thread open; the poll redraws both bubbles. Screenshots go to artifacts/screenshots/."""

import json
import time

import pytest

from conversations.models import Author, Message, MessageStatus, message_preview
from integrations.meta.signature import HEADER, sign
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import APP_SECRET, ChannelFactory, MessageFactory, UserFactory
from webhooks.services import webhook_receive

pytestmark = BROWSER_TEST


@pytest.fixture
def meta_posts(meta_example, meta_reference):
    """`post(kind, wamid, **what)`: a customer's text, edit or revoke through the real webhook
    service, signed like Meta signs it."""

    def post(kind: str, wamid: str, *, body: str = "", original: str = "") -> None:
        payload = meta_example("Text Message") if kind == "text" else meta_reference(kind.capitalize())
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        message.update(id=wamid, timestamp=str(int(time.time())))
        if kind == "text":
            message["text"]["body"] = body
        elif kind == "edit":
            message["edit"].update(original_message_id=original, message={"type": "text", "text": {"body": body}})
        else:
            message["revoke"]["original_message_id"] = original
        raw = json.dumps(payload).encode()
        assert webhook_receive(body=raw, headers={HEADER: sign(raw, APP_SECRET)}).status == 200

    return post


def test_the_thread_shows_an_edited_and_a_deleted_message_as_they_happen(
    transactional_db, live_server, browser_context, session_login, meta_posts
):
    from playwright.sync_api import expect

    ChannelFactory()
    meta_posts("text", "wamid.email", body="La mia email è anna@vecchia.it")
    email = Message.objects.get(wamid="wamid.email")
    MessageFactory(
        conversation=email.conversation, direction="out", author=Author.BOT, status=MessageStatus.READ,
        text="Grazie Anna, ho preso nota.",
    )  # fmt: skip
    meta_posts("text", "wamid.oops", body="Scusate, messaggio sbagliato")
    oops = Message.objects.get(wamid="wamid.oops")
    page = browser_context(viewport={"width": 1280, "height": 860}).new_page()
    session_login(page.context, UserFactory(username="anna", first_name="Anna"))
    page.goto(f"{live_server.url}/console/c/{email.conversation_id}/")
    expect(page.locator(f"#msg-{email.pk}")).to_contain_text("anna@vecchia.it")
    preview = page.locator(f"#conv-{email.conversation_id} .preview")
    expect(preview).to_have_text("Scusate, messaggio sbagliato")

    meta_posts("edit", "wamid.edit", body="La mia email è anna@nuova.it", original="wamid.email")
    meta_posts("revoke", "wamid.revoke", original="wamid.oops")

    edited = page.locator(f"#msg-{email.pk}")
    expect(edited.locator(".text")).to_have_text("La mia email è anna@nuova.it", timeout=5000)  # the poll redrew it
    expect(edited.locator(".edited")).to_have_text("edited")
    deleted = page.locator(f"#msg-{oops.pk}")
    expect(deleted.get_by_test_id("deleted")).to_have_text("This message was deleted")
    expect(deleted.locator(".text")).to_have_count(0)
    expect(page.locator("#messages .msg-row")).to_have_count(3)  # an edit and a deletion are no bubbles of their own
    expect(preview).to_have_text(message_preview(type="text", text="", deleted=True))  # the latest message: in the list too
    screenshot(page, "console-edited-and-deleted.png")

    edited.get_by_text("Earlier versions").click()
    expect(edited.get_by_test_id("earlier-versions")).to_contain_text("La mia email è anna@vecchia.it")
    deleted.get_by_text("What it said (only staff see this)").click()
    expect(deleted.locator("details .earlier")).to_have_text("Scusate, messaggio sbagliato")
    screenshot(page, "console-edited-and-deleted-history.png")
