"""After a hand-back the bot knows what was said meanwhile: the customer's texts and the
staff's replies written while a person held the conversation are added to the OpenAI
conversation (`conversations.items.create`, validated against OpenAI's spec by the fake)
before the next reply, once; the offline agent answers normally. The turn runs on
connections of its own, so the tests commit."""

from __future__ import annotations

import pytest
from django.utils import timezone

from conversations.agent.offline import AFTER_PERSON, COMPLETE
from conversations.models import Author, Direction, MessageStatus, MessageType, Origin, Owner
from conversations.services.botconfig import bot_config_for_channel, bot_config_save
from conversations.services.console import conversation_hand_back, conversation_reply, conversation_take_over

from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from .conftest import bot_texts, customer_says, reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_period", "redis_queue")]


def answered(conversation, text: str):
    message = customer_says(conversation, text)
    assert reply(message.pk) == "sent"
    return message


def kinds(fake_openai) -> list[str]:
    return [kind for kind, _body in fake_openai.calls if kind in ("items", "reply", "conversation")]


def test_after_a_hand_back_the_model_reads_what_the_customer_and_the_staff_said_before_it_answers(fake_openai, graph):
    conversation = ConversationFactory()
    anna = UserFactory(username="anna", first_name="Anna", last_name="Bianchi")
    answered(conversation, "Ciao, ho un problema con un ordine")

    conversation_take_over(conversation_id=conversation.pk, user=anna)
    customer_says(conversation, "È l'ordine A-77, doveva arrivare ieri")
    conversation_reply(conversation_id=conversation.pk, user=anna, text="Ho controllato: il corriere lo consegna giovedì.")
    MessageFactory(conversation=conversation, type=MessageType.REACTION, text="👍", handled_at=timezone.now())  # not words
    taken_back = MessageFactory(conversation=conversation, text="scusate, sbagliato", handled_at=timezone.now(), deleted_at=timezone.now())
    MessageFactory(  # the owner, from the WhatsApp Business app
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, origin=Origin.BUSINESS_APP,
        status=MessageStatus.SENT, text="Ti mandiamo anche il codice di tracciamento.", handled_at=timezone.now(),
    )  # fmt: skip
    conversation_hand_back(conversation_id=conversation.pk, user=anna)
    fake_openai.calls.clear()
    answered(conversation, "Quindi giovedì? Devo fare qualcosa?")

    assert kinds(fake_openai) == ["items", "reply"]  # added before the reply is asked for
    (added,) = fake_openai.bodies("items")
    conversation.refresh_from_db()
    assert added["conversation"] == conversation.openai_conversation_id == fake_openai.reply_requests[0]["conversation"]
    assert added["items"] == [
        {"type": "message", "role": "user", "content": "È l'ordine A-77, doveva arrivare ieri"},
        {"type": "message", "role": "assistant", "content": "Operatore (Anna Bianchi): Ho controllato: il corriere lo consegna giovedì."},
        {"type": "message", "role": "assistant", "content": "Operatore (WhatsApp Business app): Ti mandiamo anche il codice di tracciamento."},
    ]
    assert taken_back.text not in str(added)
    assert fake_openai.reply_requests[0]["input"] == [{"role": "user", "content": "Quindi giovedì? Devo fare qualcosa?"}]

    # Nothing twice: the next turn sends only the customer's new text.
    fake_openai.calls.clear()
    answered(conversation, "Perfetto, grazie")
    assert kinds(fake_openai) == ["reply"]


def test_a_model_that_handed_over_is_told_what_happened_after_its_hand_off(fake_openai, graph):
    conversation = ConversationFactory()
    staff = UserFactory(username="marco")
    fake_openai.replies.append({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "handoff_to_human",
                                "arguments": '{"reason": "rimborso"}', "status": "completed"})  # fmt: skip
    message = customer_says(conversation, "Voglio un rimborso")
    assert reply(message.pk) == "handoff"
    conversation_reply(conversation_id=conversation.pk, user=staff, text="Rimborso approvato, arriva in 5 giorni.")
    conversation_hand_back(conversation_id=conversation.pk, user=staff)
    fake_openai.calls.clear()

    answered(conversation, "Ok grazie")

    (added,) = fake_openai.bodies("items")
    # The model's burst and its tool output are there already; the bot's fixed hand-off text is no news to it.
    assert added["items"] == [
        {"type": "message", "role": "assistant", "content": "Operatore (marco): Rimborso approvato, arriva in 5 giorni."},
    ]


def test_a_first_reply_after_a_person_answered_from_the_start_is_told_the_whole_exchange(fake_openai, graph):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    staff = UserFactory(username="giulia", first_name="Giulia")
    customer_says(conversation, "Buongiorno, siete aperti sabato?")
    conversation_reply(conversation_id=conversation.pk, user=staff, text="Sì, fino alle 13.")
    conversation_hand_back(conversation_id=conversation.pk, user=staff)

    answered(conversation, "E la domenica?")

    assert kinds(fake_openai) == ["conversation", "items", "reply"]
    (added,) = fake_openai.bodies("items")
    assert [i["content"] for i in added["items"]] == ["Buongiorno, siete aperti sabato?", "Operatore (Giulia): Sì, fino alle 13."]


def test_a_rotation_s_summary_covers_the_hand_off_and_nothing_is_added_twice(fake_openai, graph, settings):
    settings.CONVERSATION_ROTATE_HOURS = 48
    long_ago = timezone.now() - timezone.timedelta(hours=49)
    conversation = ConversationFactory(openai_conversation_id="conv_old", openai_conversation_started_at=long_ago)
    first = MessageFactory(conversation=conversation, text="Il pacco è danneggiato", created_at=long_ago, handled_at=long_ago)
    MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, status=MessageStatus.SENT,
        text="Te ne spediamo un altro oggi.", created_at=long_ago, handled_at=long_ago,
    )  # fmt: skip
    conversation.openai_synced_message_id = first.pk - 1
    conversation.save(update_fields=["openai_synced_message_id"])

    answered(conversation, "Ciao di nuovo")

    (summary,) = fake_openai.bodies("summary")
    assert "Assistenza: Te ne spediamo un altro oggi." in summary["input"][0]["content"]
    assert fake_openai.bodies("items") == []


def test_reset_forgets_what_came_before(fake_openai, graph):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    customer_says(conversation, "Una domanda che un collega ha già chiuso")
    conversation.owner = Owner.BOT
    conversation.save(update_fields=["owner"])
    customer_says(conversation, "/reset")

    answered(conversation, "Ricominciamo")

    assert fake_openai.bodies("items") == []


@pytest.fixture
def complete_profile_bot(db):
    """The offline agent with nothing to ask (no fields to collect)."""

    def configure(conversation):
        config = bot_config_for_channel(channel=conversation.channel).config
        config.fields_to_collect = []
        bot_config_save(config=config)

    return configure


def test_offline_after_a_hand_back_the_bot_answers_without_promising_a_colleague(offline, graph, complete_profile_bot):
    conversation = ConversationFactory()
    complete_profile_bot(conversation)
    staff = UserFactory(username="luca")
    first = customer_says(conversation, "Ciao")
    assert reply(first.pk) == "sent"
    conversation_reply(conversation_id=conversation.pk, user=staff, text="Ecco il tuo codice: 1234.")
    conversation_hand_back(conversation_id=conversation.pk, user=staff)

    again = customer_says(conversation, "Grazie mille")
    assert reply(again.pk) == "sent"

    assert bot_texts(conversation)[-1] == AFTER_PERSON["it"]
    assert "collega" not in bot_texts(conversation)[-1] and not bot_texts(conversation)[-1].startswith("Ciao")
    # Without a person in between, the offline agent says what it always said.
    later = customer_says(conversation, "Un'altra cosa")
    assert reply(later.pk) == "sent"
    assert bot_texts(conversation)[-1] == COMPLETE["it"]


@pytest.mark.parametrize(
    "language, expected",
    [("en", "I'm passing you to a colleague: they will answer you here shortly."), ("it", "Ti passo a un collega: ti risponderà qui al più presto.")],
)
def test_the_hand_off_message_goes_out_in_the_customer_s_language(fake_openai, graph, language, expected):
    conversation = ConversationFactory()
    conversation.profile.language = language
    conversation.profile.save(update_fields=["language"])

    message = customer_says(conversation, "I want to talk to a human")
    assert reply(message.pk) == "handoff"
    assert bot_texts(conversation) == [expected]


def test_the_holding_message_goes_out_in_the_customer_s_language_and_the_configured_one_wins(fake_openai, graph):
    fake_openai.always_fail = 503
    english, italian = ConversationFactory(), ConversationFactory()
    english.profile.language = "en"
    english.profile.save(update_fields=["language"])
    config = bot_config_for_channel(channel=italian.channel).config
    config.fixed_messages = {"holding": {"it": "Un attimo: ti risponde un collega."}}
    bot_config_save(config=config)

    for conversation, text in ((english, "Hello?"), (italian, "Ciao?")):
        message = customer_says(conversation, text)
        assert reply(message.pk) == "holding"

    assert bot_texts(english) == ["Thank you for your message! Our assistant is not available right now: a colleague will answer you shortly."]
    assert bot_texts(italian) == ["Un attimo: ti risponde un collega."]
