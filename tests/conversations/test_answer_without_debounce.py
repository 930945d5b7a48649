"""With no quiet period (REPLY_DEBOUNCE_SECONDS = 0) the task that handles the customer's
text answers it itself, the extraction running beside the reply on a thread of its own:
one Celery task per text instead of two, still two separate model calls."""

import pytest

from conversations.models import Message, MessageStatus, Owner
from conversations.services import pipeline

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_debounce(settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0


def test_the_handling_task_extracts_and_replies_without_queueing_a_reply_task(fake_openai, graph, redis_queue, no_debounce):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"first_name": "mario", "email": "Mario@Example.com"}
    fake_openai.replies.append("Piacere Mario! Per quale azienda ci scrivi?")
    message = MessageFactory(conversation=conversation, text="Sono Mario, mario@example.com")

    assert pipeline.inbound_handle(message_id=message.pk) == "sent"

    assert redis_queue.task_names() == []
    (reply,) = Message.objects.filter(direction="out")
    assert reply.text == "Piacere Mario! Per quale azienda ci scrivi?" and reply.status == MessageStatus.SENT
    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.email) == ("Mario", "mario@example.com")
    assert len(fake_openai.extraction_requests) == 1 and len(fake_openai.reply_requests) == 1
    message.refresh_from_db()
    assert message.handled_at is not None and message.input_tokens  # the extraction's usage


def test_a_failing_extraction_does_not_stop_the_reply(fake_openai, graph, no_debounce):
    conversation = ConversationFactory()
    fake_openai.extract_failures.extend([500, 500, 500])
    message = MessageFactory(conversation=conversation, text="Ciao, sono Lucia")

    assert pipeline.inbound_handle(message_id=message.pk) == "sent"
    assert Message.objects.filter(direction="out", status=MessageStatus.SENT).count() == 1
    assert conversation.profile.first_name == ""


def test_a_failing_reply_does_not_stop_the_extraction(fake_openai, graph, no_debounce):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": "lucia@example.com"}
    fake_openai.reply_failures.extend([503, 503, 503])
    message = MessageFactory(conversation=conversation, text="lucia@example.com")

    assert pipeline.inbound_handle(message_id=message.pk) == "holding"
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "lucia@example.com"


def test_a_human_owned_conversation_is_still_extracted_and_not_answered(fake_openai, graph, no_debounce):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    fake_openai.extract = lambda text: {"email": "giulia@example.com"}
    message = MessageFactory(conversation=conversation, text="giulia@example.com")

    assert pipeline.inbound_handle(message_id=message.pk) == "handled"
    assert not Message.objects.filter(direction="out").exists()
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "giulia@example.com"


def test_an_extraction_answer_that_does_not_match_the_schema_is_dropped_and_the_reply_still_sent(fake_openai, graph, no_debounce):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": 12345, "not_a_field": "x"}
    message = MessageFactory(conversation=conversation, text="Ciao")

    assert pipeline.inbound_handle(message_id=message.pk) == "sent"
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == ""
