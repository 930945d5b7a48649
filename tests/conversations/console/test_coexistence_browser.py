"""The console in Chromium on a number shared with the WhatsApp Business app: the imported past
chats first, in time order, then the live thread, where what the owner wrote in the app shows
where it came from and the conversation waits for a person. Screenshot in artifacts/screenshots/."""

import json
import re
import time

import pytest

from conversations.models import Conversation, Message, Origin
from integrations.meta.signature import HEADER, sign
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import APP_SECRET, ChannelFactory, UserFactory
from webhooks.services import webhook_receive

DESKTOP = {"width": 1440, "height": 900}

pytestmark = BROWSER_TEST


def receive(payload: dict) -> None:
    body = json.dumps(payload).encode()
    assert webhook_receive(body=body, headers={HEADER: sign(body, APP_SECRET)}).status == 200


@pytest.fixture
def shared_number(transactional_db, meta_examples, coexistence_example):
    """Past chats imported, a customer writing today, and the owner answering from the app."""
    ChannelFactory()
    receive(coexistence_example("History: phase 0, chunk 1"))
    receive(coexistence_example("History: phase 1, chunk 2"))
    now = str(int(time.time()))
    text = json.loads(json.dumps(meta_examples["Text Message"]))
    text["entry"][0]["changes"][0]["value"]["messages"][0].update(id="wamid.browser-live", timestamp=now)
    receive(text)
    echo = coexistence_example("Echo: text")
    echo["entry"][0]["changes"][0]["value"]["message_echoes"][0]["timestamp"] = now
    receive(echo)
    return Conversation.objects.get()


def test_an_echoed_message_shows_it_came_from_the_business_app(browser_context, live_server, session_login, shared_number):
    from playwright.sync_api import expect

    agent = UserFactory(username="anna", first_name="Anna", last_name="Bianchi")
    context = browser_context(viewport=DESKTOP)
    session_login(context, agent)
    page = context.new_page()
    page.goto(f"{live_server.url}/console/c/{shared_number.pk}/")

    echo = Message.objects.get(origin=Origin.BUSINESS_APP)
    bubble = page.locator(f"#msg-{echo.pk}")
    expect(bubble).to_have_class(re.compile(r"\bdir-out author-staff\b.*\borigin-business_app\b"))
    expect(bubble).to_contain_text("Here's the info you requested!")
    expect(bubble.locator(".sender")).to_contain_text("From the WhatsApp Business app")
    expect(page.locator("#owner-state")).to_have_attribute("data-owner", "queue")  # waiting for a person: the bot is silent
    expect(page.locator("#thread-header .reason")).to_contain_text("WhatsApp Business app")
    texts = page.locator("#messages .msg-row .text").all_inner_texts()
    assert texts == [
        "Are you open on Sundays?", "Only in December, from 10 to 13.",
        "Hi, do you have the headset in stock?", "Yes, we do. Would you like one?",
        "Does it come in another color?", "Here's the info you requested! https://www.meta.com/quest/quest-3/",
    ]  # fmt: skip
    expect(page.locator("#messages .origin-history .origin").first).to_contain_text("Earlier chat, imported")
    screenshot(page, "console-business-app-echo.png")
