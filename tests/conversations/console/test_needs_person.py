"""Staff are told when a conversation needs a person: `Conversation.waiting_since`, kept by the
statements that store messages, and `selectors.needs_person_for` (who is told, and why).

The customer's messages come in through the webhook's ingest and are answered by the real turn
(the fake OpenAI on loopback, or the offline agent); these run outside a test transaction, as
the web process and the worker do."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.decisions import NeedsPerson
from conversations.ingest import delivery_ingest
from conversations.models import Conversation, ConversationStatus, Owner
from conversations.selectors import needs_person_for
from conversations.services import console as actions
from conversations.services.sweeps import inbound_surface
from integrations import base
from integrations.base import Delivery, Identity, InboundMessage
from tests.conversations.factories import PHONE_NUMBER_ID, ChannelFactory, ConversationFactory

from ..conftest import handle, handoff_call, reply
from .conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = "393331234567"
_wamids = itertools.count(1)


def writes(
    text: str, *, ago: timedelta = timedelta(minutes=3), author: str = base.Author.CUSTOMER, customer: str = CUSTOMER
) -> int:
    """A message in a webhook delivery, stored by the ingest; its id."""
    channel = ChannelFactory()
    message = InboundMessage(
        phone_number_id=PHONE_NUMBER_ID, provider_id=f"wamid.n{next(_wamids)}", customer=Identity(phone=customer), type="text",
        text=text, timestamp=timezone.now() - ago, payload={}, profile_name="Giulia", author=author,
    )  # fmt: skip
    ingested = delivery_ingest(delivery=Delivery(messages=[message]), channels={channel.phone_number_id: channel})
    return ingested.new_message_ids[0] if ingested.new_message_ids else 0


def answered_by_the_turn(message_id: int) -> str:
    outcome = handle(message_id)
    return reply(message_id) if outcome == "queued" else outcome


def the_conversation() -> Conversation:
    return Conversation.objects.get(profile__wa_id=CUSTOMER)


def waiting_ids(user) -> list[int]:
    return [w.id for w in needs_person_for(user=user)]


# --- each cause ----------------------------------------------------------------------------------


def test_a_customer_asking_for_a_person_needs_one_since_their_message(agent, offline, graph):
    asked = writes("Vorrei parlare con un operatore", ago=timedelta(minutes=3))

    assert answered_by_the_turn(asked) == "handoff"

    conversation = the_conversation()
    (waiting,) = needs_person_for(user=agent)
    assert (waiting.id, waiting.cause, waiting.name) == (conversation.pk, NeedsPerson.ASKED, "Giulia")
    assert timedelta(minutes=2) < timezone.now() - waiting.since < timedelta(minutes=4)  # since the message, not the hand-off


def test_a_model_hand_off_needs_a_person(agent, fake_openai, graph):
    fake_openai.replies.append(handoff_call("Chiede un rimborso"))
    asked = writes("Rivoglio i miei soldi")

    assert answered_by_the_turn(asked) == "handoff"

    assert [w.cause for w in needs_person_for(user=agent)] == [NeedsPerson.HANDED_OVER]


def test_the_ai_being_unavailable_needs_a_person(agent, fake_openai, graph):
    fake_openai.always_fail = 503
    asked = writes("Ci siete?")

    assert answered_by_the_turn(asked) == "holding"

    assert [w.cause for w in needs_person_for(user=agent)] == [NeedsPerson.AI_UNAVAILABLE]


def test_a_message_the_bot_failed_to_handle_for_good_needs_a_person(agent, settings):
    failed = writes("Ci siete?")
    message = the_conversation().messages.get(pk=failed)
    message.attempts = settings.TURN_MAX_ATTEMPTS

    inbound_surface(message=message)

    assert [w.cause for w in needs_person_for(user=agent)] == [NeedsPerson.AI_UNAVAILABLE]


def test_a_customer_writing_where_a_person_answered_needs_that_person_only(agent, other_agent, offline, graph):
    ConversationFactory(channel=ChannelFactory(), profile__wa_id=CUSTOMER, owner=Owner.HUMAN, assigned_to=agent)
    answered = writes("Grazie, e per la fattura?")
    assert answered_by_the_turn(answered) in ("human", "handled")  # no bot reply: a person owns it

    assert [w.cause for w in needs_person_for(user=agent)] == [NeedsPerson.MESSAGE]
    assert needs_person_for(user=other_agent) == []  # assigned: only the assignee is told


def test_an_unassigned_conversation_needs_everyone(agent, other_agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore"))
    conversation = the_conversation()

    assert waiting_ids(agent) == waiting_ids(other_agent) == [conversation.pk]

    actions.conversation_assign(conversation_id=conversation.pk, assignee=other_agent, user=agent)
    assert waiting_ids(agent) == [] and waiting_ids(other_agent) == [conversation.pk]


def test_after_a_person_answered_a_new_message_is_the_cause_and_the_wait_starts_again(agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore", ago=timedelta(minutes=30)))
    conversation = the_conversation()
    actions.conversation_take_over(conversation_id=conversation.pk, user=agent)
    actions.conversation_reply(conversation_id=conversation.pk, user=agent, text="Eccomi, sono Anna.")
    assert waiting_ids(agent) == []  # answered

    writes("Il numero è A-1234", ago=timedelta(0))

    (waiting,) = needs_person_for(user=agent)
    assert waiting.cause == NeedsPerson.MESSAGE and timezone.now() - waiting.since < timedelta(minutes=1)


# --- who answers, and what never needs a person ----------------------------------------------


def test_a_bot_reply_answers_the_customer(agent, offline, graph):
    question = writes("Che orari fate?")
    assert answered_by_the_turn(question) == "sent"

    conversation = the_conversation()
    assert conversation.owner == Owner.BOT and conversation.waiting_since is None
    assert waiting_ids(agent) == []


def test_a_bot_owned_conversation_waiting_for_its_turn_needs_nobody(agent):
    writes("Che orari fate?")  # the turn has not run yet

    assert the_conversation().waiting_since is not None
    assert waiting_ids(agent) == []


def test_a_resolved_conversation_needs_nobody(agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore"))
    conversation = the_conversation()

    actions.conversation_resolve(conversation_id=conversation.pk, user=agent)

    assert Conversation.objects.get(pk=conversation.pk).status == ConversationStatus.RESOLVED
    assert waiting_ids(agent) == []


def test_handed_back_to_the_bot_it_needs_nobody(agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore"))

    actions.conversation_hand_back(conversation_id=the_conversation().pk, user=agent)

    assert waiting_ids(agent) == [] and the_conversation().waiting_since is None


def test_the_owner_answering_in_the_business_app_answers_the_customer(agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore", ago=timedelta(minutes=10)))
    assert waiting_ids(agent)

    writes("Ciao, sono il titolare", ago=timedelta(minutes=5), author=base.Author.BUSINESS_APP)

    assert waiting_ids(agent) == []


def test_a_staff_reaction_is_not_an_answer(agent, offline, graph):
    asked = writes("Voglio un operatore")
    answered_by_the_turn(asked)
    conversation = the_conversation()
    actions.conversation_take_over(conversation_id=conversation.pk, user=agent)

    actions.conversation_react(conversation_id=conversation.pk, user=agent, message_id=asked, emoji="👍")

    assert waiting_ids(agent) == [conversation.pk]


# --- the poll ------------------------------------------------------------------------------------


def test_the_poll_lists_what_needs_the_user_then_answers_204_until_something_changes(agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore"))
    client = client_for(agent)

    first = client.get("/console/needs/poll/")
    body = first.json()
    (item,) = body["waiting"]
    assert (item["id"], item["name"], item["cause"]) == (the_conversation().pk, "Giulia", "asked")
    assert item["url"] == f"/console/c/{item['id']}/" and item["since"]

    assert client.get("/console/needs/poll/", {"since": body["since"]}).status_code == 204

    writes("Ci sei?")
    again = client.get("/console/needs/poll/", {"since": body["since"]})
    assert again.status_code == 200 and again.json()["since"] > body["since"]


def test_the_poll_costs_the_same_whatever_the_number_of_waiting_conversations(agent):
    ConversationFactory()
    client = client_for(agent)
    since = client.get("/console/needs/poll/").json()["since"]

    def queries(**params) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            client.get("/console/needs/poll/", params)
        return [q["sql"] for q in captured.captured_queries]

    nothing = queries(since=since)
    for n in range(5):
        ConversationFactory(owner=Owner.HUMAN, waiting_since=timezone.now() - timedelta(minutes=n + 1))
    changed = queries(since=since)
    ConversationFactory.create_batch(5, owner=Owner.HUMAN, waiting_since=timezone.now())
    more = queries(since=since)

    # The session and the user, then one query when nothing changed; one more otherwise.
    poll = [q for q in nothing if "conversations_conversation" in q]
    assert len(poll) == 1 and "LIMIT 1" in poll[0]
    assert len(changed) == len(nothing) + 2  # the newest change, the waiting conversations
    assert len(more) == len(changed)
    assert len(client.get("/console/needs/poll/").json()["waiting"]) == 10
    assert client.get("/console/needs/poll/", {"since": client.get("/console/needs/poll/").json()["since"]}).status_code == 204


def test_the_waiting_conversations_are_read_through_their_partial_index(agent):
    for _ in range(300):  # enough rows for the planner to prefer an index
        ConversationFactory(owner=Owner.BOT)
    ConversationFactory(owner=Owner.HUMAN, waiting_since=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE conversations_conversation")
    with CaptureQueriesContext(connection) as captured:
        needs_person_for(user=agent)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + captured.captured_queries[-1]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "conv_waiting_idx" in plan, plan


# --- the list ------------------------------------------------------------------------------------


def test_the_list_shows_how_long_a_customer_has_waited(agent, offline, graph):
    answered_by_the_turn(writes("Voglio un operatore", ago=timedelta(minutes=80, seconds=5)))
    ConversationFactory(profile__first_name="Bot", owner=Owner.BOT, waiting_since=timezone.now())  # the bot's: no wait shown

    html = client_for(agent).get("/console/").content.decode()

    assert html.count('class="tag waiting"') == 1
    assert "<span class=\"waited\">1 h 20</span>" in html
