"""The worker that commits a reply hands it to the Graph API itself, after the commit: no
third task between the model's answer and the customer. The pending -> sent state
machine is unchanged, so a temporary failure still ends in the delivery task's retry."""

import pytest

from conversations.agent.service import burst_answer
from conversations.models import Message, MessageStatus
from conversations.services import pipeline

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reply_is_sent_by_the_task_that_wrote_it(fake_openai, graph):
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Fate spedizioni all'estero?")
    pipeline.inbound_handle(message_id=question.pk)
    fake_openai.replies.append("Sì, in tutta Europa.")

    assert burst_answer(message_id=question.pk) == "sent"

    reply = Message.objects.get(direction="out")
    assert reply.status == MessageStatus.SENT and reply.wamid and reply.sent_at and reply.attempts == 1
    question.refresh_from_db()
    assert question.handled_at is not None


def test_the_reply_instructions_warn_that_the_latest_text_may_hold_a_missing_detail(fake_openai, graph):
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Sono Mario Rossi, mario@example.com")
    pipeline.inbound_handle(message_id=question.pk)
    fake_openai.replies.append("Grazie Mario!")

    assert burst_answer(message_id=question.pk) == "sent"
    assert "non chiederlo di nuovo" in fake_openai.reply_requests[-1]["instructions"]
