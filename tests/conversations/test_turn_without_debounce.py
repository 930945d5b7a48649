"""With no quiet period (REPLY_DEBOUNCE_SECONDS = 0) the turn that handles the customer's
text answers it itself, the extraction running beside the reply: one Celery task per text
instead of two, still two separate model calls."""

import pytest

from conversations.models import Message, MessageStatus, Owner
from conversations.sql import reply as reply_sql

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import MESSAGES_PATH, handle, sent_to_whatsapp

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_debounce")]


def test_the_turn_extracts_and_replies_without_queueing_a_reply_task(fake_openai, graph, redis_queue):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"first_name": "mario", "email": "Mario@Example.com"}
    fake_openai.replies.append("Piacere Mario! Per quale azienda ci scrivi?")
    message = MessageFactory(conversation=conversation, text="Sono Mario, mario@example.com")

    assert handle(message.pk) == "sent"

    assert redis_queue.task_names() == []
    (reply,) = Message.objects.filter(direction="out")
    assert reply.text == "Piacere Mario! Per quale azienda ci scrivi?" and reply.status == MessageStatus.SENT
    assert reply.wamid.startswith("wamid.out") and reply.sent_at and reply.bot_config_version_id
    assert reply.input_tokens == 1200 and reply.cached_tokens == 1000 and reply.output_tokens == 40 and reply.cost_usd
    assert sent_to_whatsapp(graph) == ["Piacere Mario! Per quale azienda ci scrivi?"]
    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.email) == ("Mario", "mario@example.com")
    assert profile.provenance["email"]["message_id"] == message.pk
    message.refresh_from_db()
    assert message.handled_at is not None and message.input_tokens == 1200  # the extraction's usage
    assert len(fake_openai.extraction_requests) == 1 and len(fake_openai.reply_requests) == 1
    assert fake_openai.reply_requests[0]["conversation"].startswith("conv_")  # created on first need
    # A second run (redelivery, sweeper) finds it handled: nothing more is sent.
    assert handle(message.pk) == "skipped"
    assert Message.objects.filter(direction="out").count() == 1


def test_the_read_receipt_goes_to_meta_beside_the_reply(fake_openai, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")

    assert handle(message.pk) == "sent"

    bodies = [r.get_json() for r, _ in graph.log if r.path == MESSAGES_PATH]
    assert {"messaging_product": "whatsapp", "status": "read", "message_id": message.wamid, "typing_indicator": {"type": "text"}} in bodies


def test_the_known_openai_conversation_is_reused(fake_openai, graph):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Ciao")
    assert handle(first.pk) == "sent"
    second = MessageFactory(conversation=conversation, text="Avete sconti?")
    assert handle(second.pk) == "sent"

    assert len(fake_openai.conversations_created) == 1
    assert fake_openai.reply_requests[0]["conversation"] == fake_openai.reply_requests[1]["conversation"]
    assert [i["content"] for i in fake_openai.reply_requests[1]["input"]] == ["Avete sconti?"]


def test_a_failing_extraction_does_not_stop_the_reply(fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract_failures.extend([500, 500, 500])
    message = MessageFactory(conversation=conversation, text="Ciao, sono Lucia")

    assert handle(message.pk) == "sent"
    assert Message.objects.filter(direction="out", status=MessageStatus.SENT).count() == 1
    conversation.profile.refresh_from_db()
    assert conversation.profile.first_name == ""
    assert len(fake_openai.extraction_requests) == 3  # bounded retries


def test_a_failing_reply_ends_in_one_holding_message_and_the_human_queue_and_the_extraction_still_runs(fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": "lucia@example.com"}
    fake_openai.reply_failures.extend([503, 503, 503])
    message = MessageFactory(conversation=conversation, text="lucia@example.com")

    assert handle(message.pk) == "holding"

    (holding,) = Message.objects.filter(direction="out")
    assert holding.status == MessageStatus.SENT
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_reason.startswith("AI unavailable")
    message.refresh_from_db()
    assert message.error_code == "openai_503" and "3 attempt" in message.error_detail
    assert message.input_tokens == 1200  # the extraction's cost is kept when the reply fails
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "lucia@example.com"


def test_a_human_owned_conversation_is_still_extracted_and_not_answered(fake_openai, graph):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    fake_openai.extract = lambda text: {"email": "giulia@example.com"}
    message = MessageFactory(conversation=conversation, text="giulia@example.com")

    assert handle(message.pk) == "handled"
    assert not Message.objects.filter(direction="out").exists()
    assert fake_openai.reply_requests == []
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "giulia@example.com"
    message.refresh_from_db()
    assert message.handled_at is not None and message.input_tokens == 1200


def test_a_command_is_answered_from_the_database(fake_openai, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="/info")

    assert handle(message.pk) == "sent"
    (reply,) = Message.objects.filter(direction="out")
    assert reply.status == MessageStatus.SENT
    assert fake_openai.reply_requests == [] and fake_openai.extraction_requests == []


def test_asking_for_a_person_hands_over_without_the_model(fake_openai, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Vorrei parlare con un operatore")

    assert handle(message.pk) == "handoff"
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_reason == "The customer asked for a person."
    assert fake_openai.reply_requests == []
    assert Message.objects.filter(direction="out").count() == 1


def test_an_extraction_answer_that_does_not_match_the_schema_is_dropped_and_the_reply_still_sent(fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": 12345, "not_a_field": "x"}
    message = MessageFactory(conversation=conversation, text="Ciao")

    assert handle(message.pk) == "sent"
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == ""


def test_the_extraction_s_usage_goes_with_the_reply_s_commit_when_it_finished_first(fake_openai, graph, monkeypatch):
    # The fake OpenAI serves one call at a time, the extraction's first (it goes out first):
    # by the reply's commit it is done, and its usage needs no statement of its own.
    separate: list[int] = []
    real = reply_sql.usage_set

    async def usage_set(*, message_id, usage):
        separate.append(message_id)
        await real(message_id=message_id, usage=usage)

    monkeypatch.setattr(reply_sql, "usage_set", usage_set)
    message = MessageFactory(conversation=ConversationFactory(), text="Buongiorno")

    assert handle(message.pk) == "sent"

    assert separate == []
    message.refresh_from_db()
    assert message.handled_at is not None
    assert (message.ai_model, message.input_tokens, message.output_tokens) == ("gpt-6-luna-2025-04-14", 1200, 40)


def test_a_customer_without_a_number_is_answered_at_its_bsuid_end_to_end(
    fake_openai, graph, channel, post_webhook, identity_example, redis_queue
):
    """Webhook view → turn → Graph API: a username user (no `from`, no `wa_id`) gets its reply
    at `recipient`, its BSUID; the fake Graph API refuses any send breaking Meta's rule."""
    fake_openai.replies.append("Sì, anche in blu!")
    assert post_webhook(identity_example("Text Message from a Username User")).status_code == 200
    message = Message.objects.get()
    assert redis_queue.task_args() == [[message.pk]]

    assert handle(message.pk) == "sent"

    sends = [r.get_json() for r, _ in graph.log if r.path == MESSAGES_PATH and "status" not in r.get_json()]
    assert [(send.get("to"), send.get("recipient"), send["text"]["body"]) for send in sends] == [
        (None, "US.13491208655302741918", "Sì, anche in blu!")
    ]
    assert Message.objects.get(direction="out").status == MessageStatus.SENT
