"""What happens between the model's answer and the reply's commit when something changed
meanwhile (`sql.reply.commit` decides; `decisions.commit_outcome` names it). The fake OpenAI
changes the database from another connection while it "thinks"."""

import pytest
from django.db import connection

from conversations.models import Author, Conversation, Message, MessageStatus, Owner

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import handle, handoff_call, reply

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

    assert handle(question.pk) == "human"

    assert not Message.objects.filter(direction="out").exists()
    question.refresh_from_db()
    assert question.handled_at is not None  # the staff member sees it answered by nobody, handled by the bot's run


def test_a_model_hand_off_after_staff_took_over_meanwhile_says_nothing_more(fake_openai, graph, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Voglio un rimborso")
    fake_openai.replies.append(handoff_call("Rimborso"))
    _meanwhile(fake_openai, lambda: Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN, handoff_reason="staff"))

    assert handle(question.pk) == "handled"

    assert not Message.objects.filter(direction="out").exists()
    conversation.refresh_from_db()
    assert conversation.handoff_reason == "staff"  # the staff member's take-over stands


def test_a_burst_answered_by_another_run_meanwhile_gets_no_second_reply(fake_openai, graph, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 3
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Avete il modello blu?")
    assert handle(question.pk) == "queued"
    revision = Conversation.objects.get(pk=conversation.pk).revision
    _meanwhile(fake_openai, lambda: Message.objects.filter(pk=question.pk).update(handled_at=question.created_at))

    assert reply(question.pk) == "skipped"

    assert not Message.objects.filter(direction="out").exists()
    assert Conversation.objects.get(pk=conversation.pk).revision == revision  # nothing written


def test_the_committed_reply_row_holds_what_the_bot_message_records(fake_openai, graph, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0
    conversation = ConversationFactory()
    question = MessageFactory(conversation=conversation, text="Che orari avete?")
    fake_openai.replies.append("Dalle 9 alle 18, dal lunedì al venerdì.")

    assert handle(question.pk) == "sent"

    reply_row = Message.objects.get(direction="out")
    assert (reply_row.author, reply_row.type, reply_row.status, reply_row.attempts) == (Author.BOT, "text", MessageStatus.SENT, 1)
    assert reply_row.text == "Dalle 9 alle 18, dal lunedì al venerdì." and reply_row.payload == {} and reply_row.media == {}
    assert reply_row.bot_config_version_id is not None and reply_row.ai_model.startswith("gpt-6-luna")
    assert (reply_row.input_tokens, reply_row.cached_tokens, reply_row.output_tokens) == (1200, 1000, 40) and reply_row.cost_usd > 0
    assert reply_row.locked_until is None and reply_row.handled_at is not None
    conversation.refresh_from_db()
    assert conversation.last_message_preview.startswith("Dalle 9") and conversation.last_message_at == reply_row.created_at
