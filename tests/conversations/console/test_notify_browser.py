"""Staff are told, in Chromium: a customer asks for a person (the real webhook and turn), the
hand-off goes to the available agent, and that agent's open console raises a desktop notification (the Notification API granted,
a spy recording each call), plays the sound, shows the count in the tab's title and the wait
in the list. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import copy
import json
import time

import pytest

from conversations.models import Conversation
from integrations.meta.signature import HEADER, sign
from profiles.models import StaffPreference
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import APP_SECRET, ChannelFactory, ConversationFactory, UserFactory
from webhooks.services import webhook_receive

from ..conftest import handle, reply

CUSTOMER = "16505551234"  # the sender in Meta's examples

pytestmark = BROWSER_TEST

# Records every notification the page raises, and every sound it plays, then lets the real
# ones go on.
SPY = """
(() => {
  window.__notified = [];
  window.__beeps = 0;
  const Real = window.Notification;
  function Spy(title, options) {
    window.__notified.push({ title: title, body: (options || {}).body || "" });
    return new Real(title, options);
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) { window.__beeps += 1; return start.apply(this, args); };
})();
"""


def customer_writes(meta_examples, text: str) -> int:
    payload = copy.deepcopy(meta_examples["Text Message"])
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(id=f"wamid.notify-{time.time_ns()}", timestamp=str(int(time.time()) - 120))
    message["text"]["body"] = text
    body = json.dumps(payload).encode()
    receipt = webhook_receive(body=body, headers={HEADER: sign(body, APP_SECRET)})
    assert receipt.status == 200 and receipt.new_message_ids
    return receipt.new_message_ids[0]


@pytest.fixture
def desk(transactional_db):
    anna = UserFactory(username="anna", first_name="Anna", last_name="Bianchi")
    bruno = UserFactory(username="bruno", first_name="Bruno", last_name="Verdi")
    StaffPreference.objects.create(user=anna, notify=True, available=True)  # Bruno is away: hand-offs go to Anna
    ChannelFactory()
    ConversationFactory(profile__profile_name="Marco Bruni", last_message_preview="Grazie mille!")
    return {"anna": anna, "bruno": bruno}


def test_a_hand_off_tells_the_assigned_agent(desk, meta_examples, browser_context, session_login, live_server, offline, graph):
    # The bot answers the customer until a person is needed.
    first = customer_writes(meta_examples, "Buongiorno")
    outcome = handle(first)
    assert (reply(first) if outcome == "queued" else outcome) == "sent"

    context = browser_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(SPY)
    session_login(context, desk["anna"])
    page = context.new_page()
    page.goto(f"{live_server.url}/console/")
    page.wait_for_function("document.title.indexOf('whatsbot') !== -1")
    page.wait_for_timeout(500)  # the first poll: what waited already is taken in silently
    assert page.evaluate("window.__notified") == []
    assert not page.title().startswith("(")

    asked = customer_writes(meta_examples, "Vorrei parlare con un operatore, per favore")
    outcome = handle(asked)
    assert (reply(asked) if outcome == "queued" else outcome) == "handoff"
    assert Conversation.objects.get(messages__pk=asked).assigned_to == desk["anna"]

    page.wait_for_function("window.__notified.length > 0", timeout=10_000)
    (notified,) = page.evaluate("window.__notified")
    assert notified["body"] == "asked for a person"
    assert notified["title"] == Conversation.objects.get(messages__pk=asked).profile.display_name
    assert page.evaluate("window.__beeps") == 1
    page.wait_for_function("document.title.startsWith('(1) ')")
    waiting = page.locator(".conv .tag.waiting")
    waiting.wait_for(timeout=10_000)
    assert waiting.inner_text().strip() == "2 min"
    screenshot(page, "notify-hand-off.png")

    # Nothing more while nothing changes; the same wait is not told twice.
    page.wait_for_timeout(2500)
    assert len(page.evaluate("window.__notified")) == 1


def test_an_agent_the_conversation_is_not_assigned_to_is_not_told(
    desk, meta_examples, browser_context, session_login, live_server, offline, graph
):
    StaffPreference.objects.create(user=desk["bruno"], notify=True)  # away

    context = browser_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(SPY)
    session_login(context, desk["bruno"])
    page = context.new_page()
    page.goto(f"{live_server.url}/console/")
    page.wait_for_timeout(500)

    asked = customer_writes(meta_examples, "Vorrei parlare con un operatore")
    outcome = handle(asked)
    assert (reply(asked) if outcome == "queued" else outcome) == "handoff"
    assert Conversation.objects.get(messages__pk=asked).assigned_to == desk["anna"]

    page.locator(".conv .tag.waiting").wait_for(timeout=10_000)  # the list shows the wait to everyone
    page.wait_for_timeout(2500)
    assert page.evaluate("window.__notified") == [] and not page.title().startswith("(")


def test_turning_desktop_notifications_on_asks_the_browser_and_is_kept(desk, browser_context, session_login, live_server):
    bruno = desk["bruno"]
    context = browser_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    session_login(context, bruno)
    page = context.new_page()
    page.goto(f"{live_server.url}/console/")

    page.click(".menu summary")
    page.click("#notify-toggle")
    page.wait_for_load_state()

    assert StaffPreference.objects.get(user=bruno).notify is True
    page.click(".menu summary")
    assert page.locator("#notify-toggle").inner_text() == "Desktop notifications: on"
    screenshot(page, "notify-menu.png")


def test_taking_over_a_waiting_customer_tells_nobody_on_this_page(
    desk, meta_examples, browser_context, session_login, live_server
):
    # The customer waits for the bot's turn; Anna takes the conversation over herself.
    waiting = customer_writes(meta_examples, "Buongiorno, una domanda sull'ordine")
    conversation = Conversation.objects.get(messages__pk=waiting)

    context = browser_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(SPY)
    session_login(context, desk["anna"])
    page = context.new_page()
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    page.wait_for_timeout(500)

    page.click("[data-action=take-over]")

    page.wait_for_function("document.title.startsWith('(1) ')", timeout=10_000)  # she has a customer waiting
    page.wait_for_timeout(2500)
    assert page.evaluate("window.__notified") == [] and page.evaluate("window.__beeps") == 0  # her own doing
