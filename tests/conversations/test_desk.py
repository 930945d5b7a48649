"""Hand-offs find a person: every path into the human queue (the customer asks, the model
hands over, the AI is down, the sweeper surfaces a failed message) assigns the least busy
available agent, in the channel's business hours; two hand-offs at once count each other;
an agent going away keeps nothing; outside the hours the customer is told when a person is
back and nobody is assigned."""

from __future__ import annotations

import asyncio
import threading
from datetime import time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations import runtime, turn
from conversations.hours import BusinessHours, business_hours_back_words, business_hours_next_open
from conversations.models import Channel, ClosedDay, Conversation, ConversationStatus, Message, OpeningHours, Owner
from conversations.services import desk, sweeps
from conversations.services.console import conversation_assign
from profiles.models import StaffPreference

from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from .conftest import bot_texts, customer_says, handoff_call, reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_period")]


def agent(username: str, *, available: bool = True, busy: int = 0):
    user = UserFactory(username=username, first_name=username.title())
    StaffPreference.objects.create(user=user, available=available)
    for _ in range(busy):
        ConversationFactory(owner=Owner.HUMAN, assigned_to=user)
    return user


def assignee(conversation) -> str | None:
    conversation.refresh_from_db()
    return conversation.assigned_to.username if conversation.assigned_to_id else None


def closed_all_week(channel: Channel) -> None:
    """Open only Monday 9:00-9:01 (Rome), and closed next Monday: closed now, whatever now is."""
    channel.time_zone = "Europe/Rome"
    channel.save(update_fields=["time_zone"])
    OpeningHours.objects.create(channel=channel, weekday=0, opens=time(9), closes=time(9, 1))
    today = timezone.localdate()
    next_monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    ClosedDay.objects.create(channel=channel, date=next_monday, name="Festa")


def test_a_customer_asking_for_a_person_goes_to_the_least_busy_available_agent(fake_openai, graph):
    agent("anna", busy=2)
    agent("bruno", busy=1)
    agent("carla", available=False)  # away, with nothing: still skipped
    conversation = ConversationFactory()

    message = customer_says(conversation, "Vorrei parlare con un operatore")
    assert reply(message.pk) == "handoff"

    assert assignee(conversation) == "bruno"
    assert conversation.owner == Owner.HUMAN and conversation.handoff_reason == "The customer asked for a person."
    assert bot_texts(conversation) == ["Ti passo a un collega: ti risponderà qui al più presto."]


def test_ties_go_to_the_lowest_user_id(fake_openai, graph):
    first, _second = agent("zeno"), agent("anna")
    conversation = ConversationFactory()
    assert reply(customer_says(conversation, "Posso parlare con una persona?").pk) == "handoff"
    assert assignee(conversation) == first.username


def test_the_model_handing_over_assigns_too(fake_openai, graph):
    agent("anna")
    fake_openai.replies.append(handoff_call("Reclamo per un rimborso"))
    conversation = ConversationFactory()

    assert reply(customer_says(conversation, "Voglio i soldi indietro").pk) == "handoff"

    assert assignee(conversation) == "anna" and conversation.owner == Owner.HUMAN


def test_an_ai_outage_assigns_the_holding_hand_off(fake_openai, graph):
    fake_openai.always_fail = 503
    agent("anna")
    conversation = ConversationFactory()

    assert reply(customer_says(conversation, "Ci siete?").pk) == "holding"

    assert assignee(conversation) == "anna" and conversation.handoff_reason.startswith("AI unavailable: ")


def test_the_sweeper_surfacing_a_failed_message_assigns_it(settings):
    settings.TURN_MAX_ATTEMPTS = 2
    agent("anna", busy=1)
    agent("bruno")
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, created_at=timezone.now() - timedelta(minutes=5), attempts=2)

    sweeps.inbound_surface(message=message)

    assert assignee(conversation) == "bruno" and conversation.owner == Owner.HUMAN


def test_with_nobody_available_the_hand_off_waits_in_the_queue(fake_openai, graph):
    agent("anna", available=False)
    UserFactory(username="bruno")  # never set anything: away
    conversation = ConversationFactory()

    assert reply(customer_says(conversation, "Vorrei parlare con un operatore").pk) == "handoff"

    assert assignee(conversation) is None and conversation.owner == Owner.HUMAN


def test_an_inactive_or_former_staff_member_is_never_picked(fake_openai, graph):
    gone = agent("anna")
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    conversation = ConversationFactory()
    assert reply(customer_says(conversation, "Vorrei parlare con un operatore").pk) == "handoff"
    assert assignee(conversation) is None


def test_an_ordinary_reply_assigns_nobody(fake_openai, graph):
    agent("anna")
    conversation = ConversationFactory()
    assert reply(customer_says(conversation, "Che orari fate?").pk) == "sent"
    assert assignee(conversation) is None and conversation.owner == Owner.BOT


def test_two_hand_offs_at_once_go_to_two_agents(offline, graph):
    """The two turns' commits run at once on the loop; without the advisory lock both would
    count from the same snapshot and both pick anna."""
    agent("anna")
    agent("bruno")
    first, second = ConversationFactory(), ConversationFactory()
    a = customer_says(first, "Vorrei parlare con un operatore")
    b = customer_says(second, "Vorrei parlare con un operatore")

    async def both():
        return await asyncio.gather(turn.burst_reply(a.pk), turn.burst_reply(b.pk))

    assert runtime.run(both) == ["handoff", "handoff"]
    assert {assignee(first), assignee(second)} == {"anna", "bruno"}


def test_concurrent_assignments_on_separate_connections_spread_and_never_assign_twice():
    agent("anna")
    agent("bruno")
    agent("carla")
    waiting = [ConversationFactory(owner=Owner.HUMAN) for _ in range(6)]
    start = threading.Barrier(6)
    results, errors = {}, []

    def assign(conversation_id: int) -> None:
        from django.db import connection

        try:
            start.wait()
            results[conversation_id] = desk.conversation_auto_assign(conversation_id=conversation_id)
            # A second worker on the same conversation finds it assigned: no change.
            assert desk.conversation_auto_assign(conversation_id=conversation_id) is None
        except Exception as exc:  # reported below: an assert in a thread would be lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=assign, args=(c.pk,)) for c in waiting]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    counts = sorted([list(results.values()).count(u) for u in set(results.values())])
    assert counts == [2, 2, 2]  # least busy each time: two each


def test_going_away_hands_open_conversations_to_an_available_colleague_or_the_queue():
    anna = agent("anna")
    agent("bruno", busy=1)
    mine = [ConversationFactory(owner=Owner.HUMAN, assigned_to=anna) for _ in range(3)]
    resolved = ConversationFactory(owner=Owner.HUMAN, assigned_to=anna, status=ConversationStatus.RESOLVED)

    assert desk.staff_availability_set(user=anna, available=False) == 3

    assert sorted(assignee(c) or "" for c in mine) == ["bruno", "bruno", "bruno"]
    assert assignee(resolved) == "anna"  # closed: nothing waits on it
    assert not StaffPreference.objects.get(user=anna).available

    # Bruno goes away too: nobody is left, so all of it waits in the queue.
    bruno = Conversation.objects.filter(assigned_to__username="bruno").first().assigned_to
    assert desk.staff_availability_set(user=bruno, available=False) == 4
    assert Conversation.objects.filter(owner=Owner.HUMAN, status=ConversationStatus.OPEN, assigned_to__isnull=False).count() == 0
    assert all(c.owner == Owner.HUMAN for c in Conversation.objects.filter(pk__in=[c.pk for c in mine]))


def test_staff_can_still_reassign_by_hand(fake_openai, graph):
    agent("anna")
    bruno = agent("bruno", available=False)
    conversation = ConversationFactory()
    assert reply(customer_says(conversation, "Vorrei parlare con un operatore").pk) == "handoff"
    assert assignee(conversation) == "anna"

    conversation_assign(conversation_id=conversation.pk, assignee=bruno, user=bruno)

    assert assignee(conversation) == "bruno"


def test_outside_business_hours_the_hand_off_says_when_a_person_is_back_and_assigns_nobody(fake_openai, graph):
    agent("anna")
    conversation = ConversationFactory()
    closed_all_week(conversation.channel)
    hours = desk.business_hours_of(channel=conversation.channel)
    back = business_hours_next_open(hours, timezone.now())
    assert back.weekday() == 0 and back.date() > timezone.localdate() + timedelta(days=6)  # not the closed Monday

    message = customer_says(conversation, "Vorrei parlare con un operatore")
    assert reply(message.pk) == "handoff"

    assert assignee(conversation) is None and conversation.owner == Owner.HUMAN
    words = business_hours_back_words(back, language="it")
    assert bot_texts(conversation) == [f"Ti passo a un collega: ora siamo chiusi, ti risponderà da {words}."]
    assert words.startswith("lunedì ") and words.endswith(" alle 9:00")


def test_outside_business_hours_the_customer_is_told_in_their_language(fake_openai, graph):
    conversation = ConversationFactory(profile__language="en")
    closed_all_week(conversation.channel)
    fake_openai.always_fail = 503  # the AI-down path tells it too

    assert reply(customer_says(conversation, "Hello?").pk) == "holding"

    (text,) = bot_texts(conversation)
    assert text.startswith("I'm passing you to a colleague: we are closed now, they will answer you from Monday ")
    assert text.endswith(" at 9:00.")


def test_outside_business_hours_the_sweeper_leaves_it_in_the_queue(settings):
    settings.TURN_MAX_ATTEMPTS = 1
    agent("anna")
    conversation = ConversationFactory()
    closed_all_week(conversation.channel)
    message = MessageFactory(conversation=conversation, created_at=timezone.now() - timedelta(minutes=5), attempts=1)

    sweeps.inbound_surface(message=message)

    assert assignee(conversation) is None and conversation.owner == Owner.HUMAN


def test_business_hours_of_a_channel_without_hours_is_none():
    conversation = ConversationFactory()
    assert desk.business_hours_of(channel=conversation.channel) is None
    OpeningHours.objects.create(channel=conversation.channel, weekday=2, opens=time(9), closes=time(0))
    hours = desk.business_hours_of(channel=conversation.channel)
    assert hours == BusinessHours(time_zone="Europe/Rome", ranges=((2, time(9), time(0)),), closed=frozenset())


# --- The console ---------------------------------------------------------------------------------


def test_the_console_menu_sets_available_and_away(client):
    anna = agent("anna", available=False)
    mine = ConversationFactory(owner=Owner.HUMAN, assigned_to=anna)
    client.force_login(anna)

    page = client.get(reverse("console:inbox"))
    assert b'id="presence" data-available="0"' in page.content and b'data-action="go-available"' in page.content

    response = client.post(reverse("console:availability"), {"available": "1", "next": "/console/"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert StaffPreference.objects.get(user=anna).available
    assert b'data-available="1"' in client.get(reverse("console:inbox")).content

    client.post(reverse("console:availability"), {"available": "0", "next": "https://evil.example/"})
    assert not StaffPreference.objects.get(user=anna).available
    assert assignee(mine) is None  # handed back to the queue (nobody else is available)


def test_the_assign_select_shows_who_is_available(client):
    anna = agent("anna")
    agent("bruno", available=False)
    conversation = ConversationFactory(owner=Owner.HUMAN)
    client.force_login(anna)

    html = client.get(reverse("console:thread", args=[conversation.pk])).content.decode()

    assert "Anna · disponibile" in html and "Bruno · assente" in html


def test_admin_sets_staff_away_through_the_service(admin_client):
    anna = agent("anna")
    mine = ConversationFactory(owner=Owner.HUMAN, assigned_to=anna)

    listing = admin_client.get("/admin/auth/user/")
    assert listing.status_code == 200
    admin_client.post("/admin/auth/user/", {"action": "set_away", "_selected_action": [anna.pk]})

    assert not StaffPreference.objects.get(user=anna).available and assignee(mine) is None
    assert Message.objects.count() == 0
