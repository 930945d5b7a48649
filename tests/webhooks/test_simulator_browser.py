"""The simulator end to end in Chromium: a customer message from the phone page goes through
the signed webhook, the worker (run eagerly, in-process) and the offline agent; the bot's
answer comes back to the phone and its ticks reach the console."""

import re

import pytest

from conversations.models import Author, Direction, Message, MessageStatus
from conversations.services.channels import sandbox_channel_ensure
from conversations.services.outbound import message_send
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.conftest import deliver
from tests.conversations.factories import UserFactory
from whatsbot.celery import app as celery_app

pytestmark = BROWSER_TEST


@pytest.fixture(autouse=True)
def _offline(offline):
    """No OpenAI account: the offline agent answers (every test here)."""


@pytest.fixture
def browser_page(browser_context):
    return browser_context(viewport={"width": 1100, "height": 860})


def _shot(page, name: str) -> None:
    screenshot(page, name, full_page=True)


def test_a_customer_chats_with_the_bot_from_the_phone_page(transactional_db, live_server, browser_page, eager_worker, session_login):
    from playwright.sync_api import expect

    sandbox, _ = sandbox_channel_ensure()
    session_login(browser_page, UserFactory(username="simona", first_name="Simona"))
    page = browser_page.new_page()

    page.goto(f"{live_server.url}/console/simulator/")
    page.get_by_label("Customer name").fill("Giulia Verdi")
    page.get_by_label("WhatsApp number").fill("+39 340 123 4567")
    page.get_by_role("button", name="Write as this customer").click()
    page.get_by_placeholder("Message").fill("Buongiorno, sono Giulia di Acme, il mio ordine non è arrivato")
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_test_id("customer-message")).to_contain_text("il mio ordine non è arrivato")
    expect(page.get_by_test_id("business-message").first).to_be_visible(timeout=15_000)
    expect(page.get_by_placeholder("Message")).to_have_value("")  # the composer is cleared

    answer = Message.objects.get(direction=Direction.OUTBOUND)
    assert answer.conversation.channel == sandbox
    assert answer.conversation.profile.wa_id == "393401234567"
    # The phone showed it, so it reported it delivered and read, as Meta would.
    page.wait_for_function("() => !document.querySelector('form[hx-post$=\"/simulator/ack/\"]')", timeout=10_000)
    answer.refresh_from_db()
    assert answer.status == MessageStatus.READ
    _shot(page, "simulator-conversation.png")

    # A second message, a second answer, on the same thread.
    page.get_by_placeholder("Message").fill("Potete richiamarmi?")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("customer-message")).to_have_count(2)
    expect(page.get_by_test_id("business-message")).to_have_count(2, timeout=15_000)

    # The same conversation is a thread in the console.
    href = page.get_by_test_id("open-in-console").get_attribute("href")
    assert re.fullmatch(r"/console/c/\d+/", href)
    _shot(page, "simulator-two-answers.png")


def test_the_phone_shows_an_answer_that_arrives_later(transactional_db, live_server, browser_page, eager_worker, session_login):
    """The bot's answer lands after the send's response (a real worker): the poll brings it."""
    from playwright.sync_api import expect

    sandbox_channel_ensure()
    session_login(browser_page, UserFactory(username="simone"))
    page = browser_page.new_page()
    page.goto(f"{live_server.url}/console/simulator/")
    page.get_by_placeholder("Message").fill("Ciao")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("customer-message")).to_have_count(1)
    expect(page.get_by_test_id("business-message")).to_have_count(1, timeout=15_000)

    # A staff member's reply, stored now and delivered by "the worker" a moment later.
    celery_app.conf.task_always_eager = False
    conversation = Message.objects.filter(direction=Direction.INBOUND).get().conversation
    late = message_send(conversation=conversation, text="Risposta arrivata dopo", author=Author.STAFF)
    page.wait_for_timeout(1500)
    expect(page.get_by_text("Risposta arrivata dopo")).to_have_count(0)  # pending: not on the phone yet
    deliver(late.pk)

    expect(page.get_by_text("Risposta arrivata dopo")).to_be_visible(timeout=5_000)
