"""A message that arrives while the model is writing makes that reply stale: it is not
sent, and the newer message's task answers both. The fake OpenAI stores the new message
(as the webhook would, from another connection) while it "thinks"."""

import pytest

from conversations.agent.service import burst_answer
from conversations.models import Message
from conversations.services import pipeline

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import customer_writes_while_the_model_thinks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reply_overtaken_by_a_new_message_is_dropped_and_the_next_covers_both(fake_openai, graph):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Quanto costa la spedizione?")
    pipeline.inbound_handle(message_id=first.pk)
    arrived = customer_writes_while_the_model_thinks(fake_openai, conversation, "e in Svizzera?")
    fake_openai.replies.extend(["In Italia è gratuita.", "In Italia è gratuita, in Svizzera costa 15 €."])

    assert burst_answer(message_id=first.pk) == "stale"
    assert not Message.objects.filter(direction="out").exists()
    first.refresh_from_db()
    assert first.handled_at is None  # still waiting for its answer

    (second,) = arrived
    pipeline.inbound_handle(message_id=second.pk)
    assert burst_answer(message_id=second.pk) == "sent"

    assert list(Message.objects.filter(direction="out").values_list("text", flat=True)) == ["In Italia è gratuita, in Svizzera costa 15 €."]
    assert [i["content"] for i in fake_openai.reply_requests[-1]["input"]] == ["Quanto costa la spedizione?", "e in Svizzera?"]
    assert not Message.objects.filter(direction="in", handled_at__isnull=True).exists()


def test_a_reply_task_for_a_message_deleted_meanwhile_does_nothing(fake_openai, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Ciao")
    conversation.delete()  # a staff member deleted the thread during the quiet period

    assert burst_answer(message_id=message.pk) == "done"
    assert fake_openai.reply_requests == []
