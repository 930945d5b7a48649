"""A burst: the customer's texts in a row get one reply, from the newest text's turn. With a
quiet period (REPLY_DEBOUNCE_SECONDS) each text queues the reply task with its countdown and
only the newest one's answers; a text that arrives while the model is writing makes that
reply stale (not sent: the newer text's turn answers both). The fake OpenAI stores the new
text (as the webhook would, from another connection) while it "thinks"."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message, MessageStatus, Owner
from conversations.queueing import AGENT_REPLY
from conversations.services import sweeps

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import bot_texts, customer_says, customer_writes_while_the_model_thinks, handle, reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_period")]


def test_a_burst_of_three_messages_gets_one_reply(fake_openai, graph, redis_queue):
    conversation = ConversationFactory()
    texts = ["Ciao", "volevo sapere", "quando arriva il mio ordine?"]
    burst = [customer_says(conversation, text) for text in texts]

    # Each text queued the reply task with the quiet period; they run in order afterwards.
    assert redis_queue.task_names() == [AGENT_REPLY] * 3
    assert [reply(m.pk) for m in burst] == ["superseded", "superseded", "sent"]

    (request,) = fake_openai.reply_requests
    assert [item["content"] for item in request["input"]] == texts
    assert len(bot_texts(conversation)) == 1
    assert Message.objects.filter(direction="in", handled_at__isnull=True).count() == 0
    # A late duplicate of any of the three tasks (redelivery, sweeper) sends nothing more.
    assert [reply(m.pk) for m in burst] == ["done"] * 3
    assert len(bot_texts(conversation)) == 1


def test_the_reply_task_is_queued_with_the_debounce_countdown(fake_openai, graph, redis_queue):
    conversation = ConversationFactory()
    message = customer_says(conversation, "Ciao")

    raw = redis_queue.client.lrange("celery", 0, -1)
    headers = json.loads(raw[0])["headers"]
    assert headers["task"] == AGENT_REPLY and headers["eta"]
    eta = timezone.datetime.fromisoformat(headers["eta"])
    assert 2 <= (eta - message.created_at).total_seconds() <= 10


def test_the_sweeper_cannot_cause_a_second_reply(fake_openai, graph):
    conversation = ConversationFactory()
    message = customer_says(conversation, "Ciao")
    assert reply(message.pk) == "sent"

    Message.objects.filter(pk=message.pk).update(locked_until=None, created_at=timezone.now() - timezone.timedelta(hours=1))
    sweeps.inbound_sweep()
    assert handle(message.pk) == "skipped"
    assert reply(message.pk) == "done"
    assert len(bot_texts(conversation)) == 1


def test_a_staff_take_over_during_the_quiet_period_silences_the_bot(fake_openai, graph):
    conversation = ConversationFactory()
    message = customer_says(conversation, "Ciao")
    Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN)

    assert reply(message.pk) == "human"
    assert bot_texts(conversation) == []
    message.refresh_from_db()
    assert message.handled_at is not None  # the staff member has it; the bot's run will not come back to it


def test_with_a_quiet_period_each_text_is_extracted_at_once_and_the_reply_is_the_debounced_task_s(fake_openai, graph, redis_queue):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": "anna@example.com"}
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    second = MessageFactory(conversation=conversation, text="anna@example.com")

    assert handle(first.pk) == "queued" and handle(second.pk) == "queued"
    assert redis_queue.task_names() == [AGENT_REPLY] * 2
    assert not Message.objects.filter(direction="out").exists()
    second.refresh_from_db()
    assert second.input_tokens == 1200 and second.handled_at is None  # its extraction's usage; its answer waits
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "anna@example.com"

    # The quiet period is over: the older text's task leaves the burst to the newer one's.
    assert reply(first.pk) == "superseded"
    assert reply(second.pk) == "sent"
    assert reply(second.pk) == "done"
    assert [i["content"] for i in fake_openai.reply_requests[0]["input"]] == ["Buongiorno", "anna@example.com"]
    assert Message.objects.filter(direction="out", status=MessageStatus.SENT).count() == 1


def test_without_a_quiet_period_an_older_text_of_a_burst_leaves_the_answer_to_the_newest(fake_openai, graph, no_debounce):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    second = MessageFactory(conversation=conversation, text="vorrei un preventivo")

    assert handle(first.pk) == "superseded"
    assert handle(second.pk) == "sent"
    assert Message.objects.filter(direction="out").count() == 1
    assert [i["content"] for i in fake_openai.reply_requests[0]["input"]] == ["Buongiorno", "vorrei un preventivo"]


def test_a_reply_overtaken_by_a_new_message_is_dropped_and_the_next_covers_both(fake_openai, graph):
    conversation = ConversationFactory()
    first = customer_says(conversation, "Quanto costa la spedizione?")
    arrived = customer_writes_while_the_model_thinks(fake_openai, conversation, "e in Svizzera?")
    fake_openai.replies.extend(["In Italia è gratuita.", "In Italia è gratuita, in Svizzera costa 15 €."])

    assert reply(first.pk) == "stale"
    assert not Message.objects.filter(direction="out").exists()
    first.refresh_from_db()
    assert first.handled_at is None  # still waiting for its answer

    (second,) = arrived
    assert handle(second.pk) == "queued"
    assert reply(second.pk) == "sent"

    assert bot_texts(conversation) == ["In Italia è gratuita, in Svizzera costa 15 €."]
    assert [i["content"] for i in fake_openai.reply_requests[-1]["input"]] == ["Quanto costa la spedizione?", "e in Svizzera?"]
    assert not Message.objects.filter(direction="in", handled_at__isnull=True).exists()


def test_without_a_quiet_period_a_stale_reply_keeps_its_extraction_s_usage(fake_openai, graph, no_debounce):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Quanto costa la spedizione?")
    arrived = customer_writes_while_the_model_thinks(fake_openai, conversation, "e in Svizzera?")
    fake_openai.replies.extend(["In Italia è gratuita.", "In Italia è gratuita, in Svizzera costa 15 €."])

    assert handle(first.pk) == "stale"
    assert not Message.objects.filter(direction="out").exists()
    first.refresh_from_db()
    assert first.handled_at is None and first.input_tokens == 1200  # its extraction's usage is kept

    (second,) = arrived
    assert handle(second.pk) == "sent"
    assert bot_texts(conversation) == ["In Italia è gratuita, in Svizzera costa 15 €."]
    assert [i["content"] for i in fake_openai.reply_requests[-1]["input"]] == ["Quanto costa la spedizione?", "e in Svizzera?"]
    assert not Message.objects.filter(direction="in", handled_at__isnull=True).exists()


def test_a_reply_task_for_a_message_deleted_meanwhile_does_nothing(fake_openai, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Ciao")
    conversation.delete()  # a staff member deleted the thread during the quiet period

    assert reply(message.pk) == "done"
    assert fake_openai.reply_requests == []
