"""What happens between the model's answer and the reply's commit, when something changed
meanwhile (on PostgreSQL the common commit is prepared SQL, not the ORM: same rules).
The fake OpenAI changes the database from another connection while it "thinks"."""

import pytest
from django.db import connection

from conversations.agent.service import burst_answer
from conversations.models import Author, Conversation, Message, MessageStatus, Owner
from conversations.services import pipeline

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _meanwhile(fake_openai, change) -> None:
    def on_reply(body):
        change()
        connection.close()  # this runs in the fake server's thread

    fake_openai.on_reply = on_reply


def test_a_staff_member_taking_over_while_the_model_thinks_silences_the_reply(fake_openai, graph, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Posso cambiare l'indirizzo?")
    _meanwhile(fake_openai, lambda: Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN))

    assert pipeline.inbound_handle(message_id=question.pk) == "human"

    assert not Message.objects.filter(direction="out").exists()
    question.refresh_from_db()
    assert question.handled_at is not None  # the staff member sees it answered by nobody, handled by the bot's run


def test_a_burst_answered_by_another_run_meanwhile_gets_no_second_reply(fake_openai, graph):
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Avete il modello blu?")
    pipeline.inbound_handle(message_id=question.pk)
    revision = Conversation.objects.get(pk=conversation.pk).revision
    _meanwhile(fake_openai, lambda: Message.objects.filter(pk=question.pk).update(handled_at=question.created_at))

    assert burst_answer(message_id=question.pk) == "skipped"

    assert not Message.objects.filter(direction="out").exists()
    assert Conversation.objects.get(pk=conversation.pk).revision == revision  # the bump rolled back with it


def test_the_committed_reply_row_holds_what_the_bot_message_records(fake_openai, graph, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Che orari avete?")
    fake_openai.replies.append("Dalle 9 alle 18, dal lunedì al venerdì.")

    assert pipeline.inbound_handle(message_id=question.pk) == "sent"

    reply = Message.objects.get(direction="out")
    assert (reply.author, reply.type, reply.status, reply.attempts) == (Author.BOT, "text", MessageStatus.SENT, 1)
    assert reply.text == "Dalle 9 alle 18, dal lunedì al venerdì." and reply.payload == {} and reply.media == {}
    assert reply.bot_config_version_id is not None and reply.ai_model.startswith("gpt-4.1")
    assert (reply.input_tokens, reply.cached_tokens, reply.output_tokens) == (1200, 1000, 40) and reply.cost_usd > 0
    assert reply.locked_until is None and reply.handled_at is not None
    conversation.refresh_from_db()
    assert conversation.last_message_preview.startswith("Dalle 9") and conversation.last_message_at == reply.created_at


def test_the_extraction_usage_handed_to_the_commit_is_stored_on_the_customer_message(graph):
    from decimal import Decimal

    from django.utils import timezone

    from conversations.services import fastpath
    from conversations.services.outbound import message_outbound_build

    if not fastpath.enabled():
        pytest.skip("the prepared statements are PostgreSQL's")
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    second = MessageFactory(conversation=conversation, text="sono Anna")
    reply = message_outbound_build(conversation=conversation, type="text", text="Ciao Anna!", now=timezone.now())
    usage = {"ai_model": "gpt-4.1-mini", "input_tokens": 300, "cached_tokens": 0, "output_tokens": 12, "cost_usd": Decimal("0.000139")}

    outcome = fastpath.reply_commit(conversation=conversation, burst=[first, second], reply=reply, preview="Ciao Anna!", usage=(second.pk, usage))

    assert outcome == "sent" and Message.objects.filter(pk=reply.pk, direction="out").exists()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.handled_at and second.handled_at
    assert (second.ai_model, second.input_tokens, second.output_tokens, second.cost_usd) == ("gpt-4.1-mini", 300, 12, Decimal("0.000139"))
    assert first.ai_model == "" and first.input_tokens is None  # only the extracted message's
