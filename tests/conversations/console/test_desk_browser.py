"""The desk in Chromium: a customer asking for a person (through the real webhook, the turn
run by the eager worker, the offline agent) lands with the available agent, not the away
one; with the channel closed, the thread shows the customer was told when a person is back
and nobody has it. Screenshots go to artifacts/screenshots/."""

import copy
import json
import time as clock
from datetime import time, timedelta

import pytest
from django.utils import timezone

from conversations.hours import business_hours_back_words, business_hours_next_open
from conversations.models import ClosedDay, Conversation, Message, OpeningHours, Owner
from conversations.services.desk import business_hours_of
from integrations.meta.signature import HEADER, sign
from profiles.models import StaffPreference
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.conftest import MESSAGES_PATH
from tests.conversations.factories import APP_SECRET, ChannelFactory, UserFactory
from webhooks.services import webhook_receive

DESKTOP = {"width": 1440, "height": 900}

pytestmark = [*BROWSER_TEST, pytest.mark.usefixtures("offline", "no_debounce", "eager_worker")]


@pytest.fixture
def team(transactional_db, graph_api):
    """Anna is available, Bruno away; the fake Meta takes every send."""
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json({"messages": [{"id": "wamid.out"}]})
    anna = UserFactory(username="anna", first_name="Anna", last_name="Bianchi")
    bruno = UserFactory(username="bruno", first_name="Bruno", last_name="Verdi")
    StaffPreference.objects.create(user=anna, available=True)
    StaffPreference.objects.create(user=bruno, available=False)
    return {"anna": anna, "bruno": bruno, "channel": ChannelFactory()}


def customer_writes(meta_examples, text: str) -> Conversation:
    """A customer text through the real webhook service, signed like Meta signs it; the eager
    worker runs its turn on commit."""
    payload = copy.deepcopy(meta_examples["Text Message"])
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(id=f"wamid.desk-{clock.time_ns()}", timestamp=str(int(clock.time())))
    message["text"]["body"] = text
    body = json.dumps(payload).encode()
    receipt = webhook_receive(body=body, headers={HEADER: sign(body, APP_SECRET)})
    assert receipt.status == 200 and receipt.new_message_ids
    return Message.objects.get(pk=receipt.new_message_ids[0]).conversation


def test_a_customer_asking_for_a_person_is_assigned_to_the_available_agent(browser_context, session_login, live_server, team, meta_examples):
    from playwright.sync_api import expect

    conversation = customer_writes(meta_examples, "Buongiorno, vorrei parlare con un operatore")
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.assigned_to == team["anna"]

    context = browser_context(locale="it-IT")
    session_login(context, team["bruno"])
    page = context.new_page()
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    expect(page.locator("#owner-state")).to_contain_text("Anna Bianchi")
    expect(page.locator("#presence")).to_have_text("Assente")
    expect(page.locator(f"#assignee-{conversation.pk} option:checked")).to_have_text("Anna Bianchi · disponibile")
    expect(page.locator("#messages")).to_contain_text("Ti passo a un collega")
    screenshot(page, "desk-assigned-to-the-available-agent.png")

    # Bruno says he is available from the menu; Anna goes away and her conversation is his.
    page.locator("details.menu summary").click()
    page.locator("[data-action=go-available]").click()
    expect(page.locator("#presence")).to_have_text("Disponibile")
    anna = browser_context(locale="it-IT")
    session_login(anna, team["anna"])
    anna_page = anna.new_page()
    anna_page.goto(f"{live_server.url}/console/")
    anna_page.locator("details.menu summary").click()
    anna_page.locator("[data-action=go-away]").click()
    expect(anna_page.locator("#presence")).to_have_text("Assente")
    expect(anna_page.locator(".toasts")).to_contain_text("1 conversazione è tornata in coda o a un collega")
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    expect(page.locator("#owner-state")).to_contain_text("Bruno Verdi")
    screenshot(page, "desk-handed-on-when-an-agent-goes-away.png")


def test_outside_business_hours_the_customer_is_told_when_a_person_is_back(browser_context, session_login, live_server, team, meta_examples):
    from playwright.sync_api import expect

    channel = team["channel"]
    channel.time_zone = "Europe/Rome"
    channel.save(update_fields=["time_zone"])
    # Open on Mondays 9:00-9:01 only, and closed next Monday: closed now, whenever now is.
    OpeningHours.objects.create(channel=channel, weekday=0, opens=time(9), closes=time(9, 1))
    today = timezone.localdate()
    ClosedDay.objects.create(channel=channel, date=today + timedelta(days=(7 - today.weekday()) % 7 or 7), name="Festa")
    back = business_hours_next_open(business_hours_of(channel=channel), timezone.now())

    conversation = customer_writes(meta_examples, "Vorrei parlare con un operatore")
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.assigned_to is None

    context = browser_context(locale="it-IT")
    session_login(context, team["anna"])
    page = context.new_page()
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    expect(page.locator("#owner-state")).to_contain_text("In attesa")
    words = business_hours_back_words(back, language="it")
    expect(page.locator("#messages")).to_contain_text(f"ora siamo chiusi, ti risponderà da {words}")
    screenshot(page, "desk-closed-says-when-a-person-is-back.png")
