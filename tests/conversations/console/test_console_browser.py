"""The console in Chromium: log in, open a thread, watch a customer message arrive live,
reply (pending, then sent), take over and hand back, edit a profile field; screenshots of
the main pages on a desktop and on a phone go to artifacts/screenshots/."""

import copy
import json
import time

import pytest
from django.utils import timezone

from conversations.models import Author, Conversation, Message, MessageStatus, Owner, QuickReply
from integrations.meta.signature import HEADER, sign
from profiles.models import FieldSource
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.conftest import MESSAGES_PATH, deliver
from tests.conversations.factories import APP_SECRET, ChannelFactory, ConversationFactory, MessageFactory, UserFactory
from webhooks.services import webhook_receive

PASSWORD = "correct-horse-battery"
CUSTOMER = "16505551234"  # the sender in Meta's examples
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = BROWSER_TEST


def shot(page, name: str) -> None:
    screenshot(page, f"console-{name}.png")


@pytest.fixture
def customer_writes(meta_examples):
    """A customer message through the real webhook service, signed like Meta signs it."""
    counter = iter(range(10_000))

    def write(text: str) -> Message:
        payload = copy.deepcopy(meta_examples["Text Message"])
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        message.update(id=f"wamid.browser-{time.time_ns()}-{next(counter)}", timestamp=str(int(time.time())))
        message["text"]["body"] = text
        body = json.dumps(payload).encode()
        receipt = webhook_receive(body=body, headers={HEADER: sign(body, APP_SECRET)})
        assert receipt.status == 200 and receipt.new_message_ids
        return Message.objects.get(pk=receipt.new_message_ids[0])

    return write


@pytest.fixture
def desk(transactional_db, customer_writes):
    """An agent, a channel, and a customer who wrote a minute ago (window open)."""
    agent = UserFactory(username="anna", first_name="Anna", last_name="Bianchi")
    UserFactory(username="bruno", first_name="Bruno", last_name="Verdi")
    ChannelFactory()
    first = customer_writes("Buongiorno, il mio ordine A-1042 non è ancora arrivato")
    conversation = first.conversation
    MessageFactory(
        conversation=conversation, direction="out", author=Author.BOT, status=MessageStatus.READ,
        text="Mi dispiace! Controllo subito. Mi conferma il suo nome e cognome?",
    )  # fmt: skip
    profile = conversation.profile
    from profiles.services import profile_field_set

    profile_field_set(profile=profile, field="first_name", value="Sheena", source=FieldSource.AI, message=first)
    profile_field_set(profile=profile, field="order_number", value="A-1042", source=FieldSource.AI, message=first)
    QuickReply.objects.create(shortcut="orari", title="Orari di apertura", text="Siamo aperti dal lunedì al venerdì, 9-18.")
    # Some neighbours in the list.
    for name, preview, owner in [("Marco Bruni", "Grazie mille!", Owner.BOT), ("Lucia Ferri", "Posso parlare con qualcuno?", Owner.HUMAN)]:
        c = ConversationFactory(profile__profile_name=name, last_message_preview=preview, owner=owner, unread_count=1,
                                last_message_at=timezone.now() - timezone.timedelta(hours=3))  # fmt: skip
        MessageFactory(conversation=c, text=preview)
    return {"agent": agent, "conversation": Conversation.objects.get(pk=conversation.pk)}


def log_in(page, live_server, username="anna"):
    page.goto(f"{live_server.url}/console/")
    assert "/console/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{live_server.url}/console/")


def test_an_agent_logs_in_opens_a_thread_and_a_new_customer_message_appears_live(browser, live_server, desk, customer_writes):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{live_server.url}/console/login/")
    shot(page, "login")
    log_in(page, live_server)
    conversation = desk["conversation"]
    row = page.locator(f"#conv-{conversation.pk}")
    expect(row).to_contain_text("Sheena")
    shot(page, "list")

    row.locator("a").click()
    expect(page.locator("#thread-header")).to_contain_text("Sheena")
    page.wait_for_url(f"**/console/c/{conversation.pk}/")
    expect(page.locator("#messages")).to_contain_text("A-1042 non è ancora arrivato")

    message = customer_writes("C'è qualcuno? Aspetto una risposta")
    # Polling every 2 s: visible within 3 s, without a reload.
    expect(page.locator(f"#msg-{message.pk}")).to_contain_text("C'è qualcuno?", timeout=3000)
    expect(page.locator(f"#conv-{conversation.pk} .preview")).to_contain_text("C'è qualcuno?", timeout=3000)
    expect(page.locator("#messages .day")).to_have_count(1)  # one "today" separator, still there after the poll
    shot(page, "thread")


def test_a_manual_reply_is_pending_then_sent_and_take_over_and_hand_back_work(browser, live_server, desk, graph_api):
    from playwright.sync_api import expect

    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json(
        {"messages": [{"id": "wamid.from-the-console"}]}
    )
    conversation = desk["conversation"]
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    expect(page.locator("#owner-state")).to_have_attribute("data-owner", "bot")

    # The `/` picker inserts a quick reply.
    page.fill("#composer-text", "/or")
    page.locator("#composer-text").press("a")  # "/ora"
    expect(page.locator("#qr-picker .qr-item")).to_have_count(1)
    page.locator("#composer-text").press("Enter")
    expect(page.locator("#composer-text")).to_have_value("Siamo aperti dal lunedì al venerdì, 9-18.")

    page.fill("#composer-text", "Buongiorno Sheena, verifico la spedizione e le scrivo entro un'ora.")
    page.locator("#composer-text").press("Enter")
    reply = page.locator(".msg-row.author-staff").last
    expect(reply).to_contain_text("verifico la spedizione", timeout=3000)
    expect(reply.locator(".tick")).to_have_attribute("data-status", "pending")
    # Sending took the conversation over.
    expect(page.locator("#owner-state")).to_have_attribute("data-owner", "human", timeout=3000)
    expect(page.locator("#owner-state")).to_contain_text("Anna Bianchi")
    expect(page.locator("#composer-text")).to_have_value("")

    message = Message.objects.get(author=Author.STAFF)
    assert message.status == MessageStatus.PENDING
    assert deliver(message.pk) == "sent"  # what the Celery task runs
    expect(reply.locator(".tick")).to_have_attribute("data-status", "sent", timeout=3000)
    shot(page, "reply-sent")

    page.click("[data-action=hand-back]")
    expect(page.locator("#owner-state")).to_have_attribute("data-owner", "bot", timeout=3000)
    assert Conversation.objects.get(pk=conversation.pk).owner == Owner.BOT
    page.click("[data-action=take-over]")
    expect(page.locator("#owner-state")).to_have_attribute("data-owner", "human", timeout=3000)
    assert Conversation.objects.get(pk=conversation.pk).assigned_to == desk["agent"]


def test_a_second_agent_taking_over_is_told_who_has_it(browser, live_server, desk):
    from playwright.sync_api import expect

    conversation = desk["conversation"]
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server, username="bruno")
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    # Anna takes it while Bruno looks at the page.
    from conversations.services.console import conversation_take_over

    assert conversation_take_over(conversation_id=conversation.pk, user=desk["agent"]).won
    page.click("[data-action=take-over]")
    expect(page.locator("#flash .alert.error")).to_contain_text("Anna Bianchi")
    expect(page.locator("#owner-state")).to_contain_text("Anna Bianchi", timeout=3000)


def test_an_agent_edits_a_profile_field_inline(browser, live_server, desk):
    from playwright.sync_api import expect

    conversation = desk["conversation"]
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    field = page.locator("#pfield-company")
    expect(field).to_have_class("pfield is-missing")
    field.locator("a.edit").click()
    page.fill("#pfield-input-company", "Nelson Trading Ltd")
    page.locator("#pfield-company button[type=submit]").click()
    expect(page.locator("#pfield-company .pfield-value")).to_have_text("Nelson Trading Ltd")
    expect(page.locator("#pfield-company .pfield-source")).to_contain_text("anna")
    profile = Conversation.objects.get(pk=conversation.pk).profile
    assert profile.company == "Nelson Trading Ltd" and profile.provenance["company"]["source"] == FieldSource.STAFF

    # A bad value is refused in place, with the reason.
    page.locator("#pfield-email a.edit").click()
    page.fill("#pfield-input-email", "sheena@example")  # the browser accepts it, the server does not
    page.locator("#pfield-email button[type=submit]").click()
    expect(page.locator("#pfield-email .alert.error")).to_be_visible()
    shot(page, "profile-edit")


def test_the_console_works_on_a_phone(browser, live_server, desk):
    from playwright.sync_api import expect

    conversation = desk["conversation"]
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    log_in(page, live_server)
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.locator("#thread-pane")).to_be_hidden()
    shot(page, "phone-list")

    page.locator(f"#conv-{conversation.pk} a").click()
    expect(page.locator("#thread-header")).to_be_visible()
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(page.locator("#composer-text")).to_be_visible()
    shot(page, "phone-thread")

    page.locator("#thread-header .who").click()
    expect(page.locator("#side-panel")).to_be_visible()
    shot(page, "phone-profile")
    page.locator("#side-panel .close").click()
    expect(page.locator("#side-panel")).to_be_hidden()

    page.locator("#thread-header .back").click()
    expect(page.locator("#sidebar")).to_be_visible()


def test_outside_the_window_the_composer_is_closed_in_the_browser(browser, live_server, desk):
    from playwright.sync_api import expect

    conversation = desk["conversation"]
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now() - timezone.timedelta(hours=30))
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    expect(page.locator(".composer-closed")).to_be_visible()
    expect(page.locator("#composer-text")).to_have_count(0)
    shot(page, "window-closed")


def test_a_customer_without_a_number_shows_its_username_in_the_header_and_the_panel(
    browser, live_server, desk, identity_examples
):
    from playwright.sync_api import expect

    body = json.dumps(identity_examples["Text Message from a Username User"]).encode()
    receipt = webhook_receive(body=body, headers={HEADER: sign(body, APP_SECRET)})
    assert receipt.status == 200
    conversation = Message.objects.get(pk=receipt.new_message_ids[0]).conversation
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server)

    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")

    expect(page.locator("#thread-header .who-sub")).to_have_text(f"@sheena.nelson · {conversation.channel.name}")
    expect(page.locator(f"#conv-{conversation.pk}")).to_contain_text("Sheena Nelson")
    expect(page.locator("#messages")).to_contain_text("Does it come in another color?")
    page.locator("#thread-header .who").click()
    expect(page.locator("#side-panel .contact-card")).to_contain_text("@sheena.nelson")
    shot(page, "thread-username")
