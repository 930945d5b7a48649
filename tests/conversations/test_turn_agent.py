"""Scripted conversations end to end through the turn (`conversations.turn`): a customer's
text handled (`handle`: the extraction, the reply task queued with its quiet period), then
the debounced reply (`reply`), with the fake OpenAI (through the real SDK, bodies validated
against OpenAI's spec) and the fake Meta. The turn runs on connections of its own, so the
tests commit."""

from __future__ import annotations

import pytest
from django.utils import timezone

from conversations.agent.prompts import CUSTOMER_TEXT_MAX
from conversations.models import Author, Message, Owner
from profiles.models import FieldSource
from profiles.services import profile_field_set

from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from .conftest import bot_texts, customer_says, handoff_call, reply, sent_to_whatsapp

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_period")]


def test_extraction_fills_the_profile_and_the_bot_asks_for_the_next_missing_field(fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: (
        {"first_name": "mario", "last_name": "ROSSI", "language": "it"} if "sono Mario" in text else {"company": "ACME srl", "email": "Mario@Acme.IT"}
    )
    fake_openai.replies.extend(["Piacere Mario! Per quale azienda ci scrivi?", "Grazie! Hai un numero d'ordine?"])

    first = customer_says(conversation, "Ciao, sono Mario Rossi")
    assert reply(first.pk) == "sent"

    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name, profile.language) == ("Mario", "Rossi", "it")
    assert profile.provenance["first_name"]["source"] == FieldSource.AI
    assert profile.provenance["first_name"]["message_id"] == first.pk
    reply_request = fake_openai.reply_requests[0]
    assert "nome: Mario; cognome: Rossi" in reply_request["instructions"]
    assert "Dati ancora mancanti, in ordine: azienda, email, numero d'ordine" in reply_request["instructions"]
    assert reply_request["input"] == [{"role": "user", "content": "Ciao, sono Mario Rossi"}]
    assert reply_request["conversation"] == "conv_1" or reply_request["conversation"].startswith("conv_")

    second = customer_says(conversation, "Lavoro per ACME srl, la mia email è Mario@Acme.IT")
    assert reply(second.pk) == "sent"
    profile.refresh_from_db()
    assert (profile.company, profile.email) == ("ACME srl", "mario@acme.it")
    # One OpenAI conversation, and each turn sends only what is new.
    assert len(fake_openai.conversations_created) == 1
    first_reply, second_reply = fake_openai.reply_requests
    assert second_reply["conversation"] == first_reply["conversation"]
    assert second_reply["input"] == [{"role": "user", "content": "Lavoro per ACME srl, la mia email è Mario@Acme.IT"}]
    assert "Dati ancora mancanti, in ordine: numero d'ordine" in second_reply["instructions"]
    assert "email: mario@acme.it" in second_reply["instructions"]

    # Each reply was delivered by the turn that wrote it.
    assert sent_to_whatsapp(graph) == ["Piacere Mario! Per quale azienda ci scrivi?", "Grazie! Hai un numero d'ordine?"]
    bot = conversation.messages.filter(direction="out").first()
    assert bot.author == Author.BOT and bot.bot_config_version is not None
    assert (bot.ai_model, bot.input_tokens, bot.cached_tokens, bot.output_tokens) == ("gpt-6-luna-2025-04-14", 1200, 1000, 40)
    # The default model, gpt-6-luna: 200 × $0.10 + 1000 × $0.01 + 40 × $0.50 per million tokens.
    assert str(bot.cost_usd) == "0.000050"
    first.refresh_from_db()
    assert first.handled_at is not None and first.input_tokens == 1200  # the extraction's usage


def test_the_extraction_asks_for_exactly_the_configured_fields(fake_openai, graph):
    conversation = ConversationFactory()
    customer_says(conversation, "Buongiorno")

    (extraction,) = fake_openai.extraction_requests
    assert extraction["store"] is False and "conversation" not in extraction
    schema = extraction["text"]["format"]
    assert schema["type"] == "json_schema" and schema["strict"] is True
    assert set(schema["schema"]["properties"]) == {"first_name", "last_name", "company", "email", "order_number", "language"}


def test_a_staff_edited_field_survives_the_ai(fake_openai, graph):
    conversation = ConversationFactory()
    staff = UserFactory()
    profile_field_set(profile=conversation.profile, field="email", value="right@example.com", source=FieldSource.STAFF, user=staff)
    fake_openai.extract = lambda text: {"email": "wrong@example.com", "first_name": "Anna"}

    message = customer_says(conversation, "Sono Anna, scrivetemi a wrong@example.com")
    reply(message.pk)

    profile = conversation.profile
    profile.refresh_from_db()
    assert profile.email == "right@example.com"
    assert profile.provenance["email"]["source"] == FieldSource.STAFF
    assert profile.first_name == "Anna"
    assert "email: right@example.com" in fake_openai.reply_requests[0]["instructions"]


def test_invalid_extracted_values_never_touch_the_profile(fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": "mario at acme", "first_name": "d'angelo", "order_number": "!!"}

    customer_says(conversation, "ciao sono d'angelo, mail mario at acme, ordine !!")

    profile = conversation.profile
    profile.refresh_from_db()
    assert profile.first_name == "D'Angelo"
    assert profile.email == "" and profile.order_numbers == []


def test_reset_starts_a_new_openai_conversation_and_keeps_the_history(fake_openai, graph):
    conversation = ConversationFactory()
    first = customer_says(conversation, "Ciao")
    reply(first.pk)
    old_id = fake_openai.reply_requests[0]["conversation"]

    reset = customer_says(conversation, "/reset")
    reset.refresh_from_db()
    assert reset.handled_at is not None
    assert bot_texts(conversation)[-1] == "Fatto: ricominciamo da capo. Come posso aiutarti?"
    assert len(fake_openai.reply_requests) == 1  # a command is not sent to the model

    again = customer_says(conversation, "Ho una domanda")
    reply(again.pk)
    assert len(fake_openai.conversations_created) == 2
    assert fake_openai.reply_requests[-1]["conversation"] != old_id
    conversation.refresh_from_db()
    assert conversation.openai_conversation_id == fake_openai.reply_requests[-1]["conversation"]
    assert conversation.messages.count() == 6  # nothing deleted


def test_history_and_info_answer_from_the_database(fake_openai, graph):
    conversation = ConversationFactory()
    profile_field_set(profile=conversation.profile, field="first_name", value="Lucia", source=FieldSource.STAFF)
    profile_field_set(profile=conversation.profile, field="order_number", value="A-1234", source=FieldSource.STAFF)
    hello = customer_says(conversation, "Buongiorno")
    reply(hello.pk)

    customer_says(conversation, "/cronologia")
    customer_says(conversation, "/info")

    history, info = bot_texts(conversation)[-2:]
    assert history.startswith("Gli ultimi messaggi:") and "Tu: Buongiorno" in history and "Noi: Certo, ti aiuto volentieri." in history
    assert "nome: Lucia" in info and "numero d'ordine: A-1234" in info and f"+{conversation.profile.wa_id}" in info


def test_an_unknown_slash_word_is_ordinary_text(fake_openai, graph):
    conversation = ConversationFactory()
    message = customer_says(conversation, "/prezzi del catalogo?")

    assert reply(message.pk) == "sent"
    assert fake_openai.reply_requests[0]["input"][0]["content"] == "/prezzi del catalogo?"


def test_a_human_owned_conversation_gets_no_bot_reply_but_extraction_runs(fake_openai, graph, redis_queue):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    fake_openai.extract = lambda text: {"email": "giulia@example.com"}

    message = customer_says(conversation, "la mia mail è giulia@example.com")

    message.refresh_from_db()
    assert message.handled_at is not None
    assert bot_texts(conversation) == []
    assert fake_openai.reply_requests == [] and len(fake_openai.extraction_requests) == 1
    assert len(redis_queue) == 0  # no reply task at all
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "giulia@example.com"


@pytest.mark.parametrize(
    "text", ["Vorrei parlare con un operatore", "posso parlare con una persona vera?", "I want to talk to a human", "Can I speak to someone please"]
)
def test_a_customer_asking_for_a_person_is_handed_over_and_told_once(fake_openai, graph, text):
    conversation = ConversationFactory()

    message = customer_says(conversation, text)
    assert reply(message.pk) == "handoff"
    again = customer_says(conversation, "allora?")

    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN
    assert conversation.handoff_reason == "The customer asked for a person." and conversation.handoff_at
    assert bot_texts(conversation) == ["Ti passo a un collega: ti risponderà qui al più presto."]
    assert fake_openai.reply_requests == []
    again.refresh_from_db()
    assert again.handled_at is not None


def test_the_model_hands_over_with_its_function_tool(fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.replies.append(handoff_call("Reclamo per un rimborso"))

    message = customer_says(conversation, "Il prodotto è arrivato rotto e voglio i soldi indietro")
    assert reply(message.pk) == "handoff"

    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN
    assert conversation.handoff_reason == "The AI handed over: Reclamo per un rimborso"
    assert bot_texts(conversation) == ["Ti passo a un collega: ti risponderà qui al più presto."]
    tools = fake_openai.reply_requests[0]["tools"]
    assert [t["name"] for t in tools if t["type"] == "function"] == ["handoff_to_human"]
    # The function call got its output, so the OpenAI conversation stays usable.
    (items,) = fake_openai.bodies("items")
    assert items["conversation"] == conversation.openai_conversation_id
    assert items["items"][0]["type"] == "function_call_output" and items["items"][0]["call_id"] == "call_handoff_1"


def test_an_openai_outage_ends_in_exactly_one_holding_message(fake_openai, graph, settings):
    fake_openai.always_fail = 503
    conversation = ConversationFactory()

    first = customer_says(conversation, "Ciao, ci siete?")
    assert reply(first.pk) == "holding"
    second = customer_says(conversation, "Pronto?")
    assert reply(second.pk) == "done"

    assert bot_texts(conversation) == [conversation.messages.filter(direction="out").get().text]
    assert bot_texts(conversation)[0].startswith("Grazie per il messaggio! In questo momento il nostro assistente non è disponibile")
    # Bounded: each call was tried OPENAI_MAX_ATTEMPTS times, no more.
    assert len(fake_openai.conversations_created) == settings.OPENAI_MAX_ATTEMPTS
    assert len(fake_openai.extraction_requests) == 2 * settings.OPENAI_MAX_ATTEMPTS
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_reason.startswith("AI unavailable: ")
    first.refresh_from_db()
    assert first.handled_at and first.error_code == "openai_503" and "3 attempt(s)" in first.error_detail
    assert Message.objects.filter(direction="in").count() == 2  # nothing lost
    assert len(sent_to_whatsapp(graph)) == 1


def test_temporary_failures_are_retried_then_answered(fake_openai, graph):
    fake_openai.reply_failures.extend([429, 500])
    fake_openai.extract_failures.extend([502])
    fake_openai.extract = lambda text: {"first_name": "Paolo"}
    conversation = ConversationFactory()

    message = customer_says(conversation, "Sono Paolo")
    assert reply(message.pk) == "sent"

    assert len(fake_openai.reply_requests) == 3 and len(fake_openai.extraction_requests) == 2
    conversation.profile.refresh_from_db()
    assert conversation.profile.first_name == "Paolo"


def test_a_permanent_error_is_not_retried(fake_openai, graph):
    fake_openai.reply_failures.append(400)
    conversation = ConversationFactory()

    message = customer_says(conversation, "Ciao")
    assert reply(message.pk) == "holding"
    assert len(fake_openai.reply_requests) == 1


def test_a_failing_extraction_never_blocks_the_reply_and_vice_versa(fake_openai, graph):
    fake_openai.extract_failures.extend([500, 500, 500])
    conversation = ConversationFactory()
    message = customer_says(conversation, "Sono Carla")
    assert reply(message.pk) == "sent"

    fake_openai.reply_failures.extend([500, 500, 500])
    fake_openai.extract = lambda text: {"email": "carla@example.com"}
    other = customer_says(conversation, "carla@example.com")
    assert reply(other.pk) == "holding"
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "carla@example.com"


def test_an_idle_conversation_rotates_with_a_summary(fake_openai, graph, settings):
    settings.CONVERSATION_ROTATE_HOURS = 48
    long_ago = timezone.now() - timezone.timedelta(hours=49)
    conversation = ConversationFactory(openai_conversation_id="conv_old", openai_conversation_started_at=long_ago)
    for author, direction, text in [("customer", "in", "Sono Mario, ordine A-1234"), ("bot", "out", "Grazie Mario!")]:
        MessageFactory(conversation=conversation, author=author, direction=direction, text=text, created_at=long_ago, handled_at=long_ago)

    message = customer_says(conversation, "Ciao di nuovo")
    assert reply(message.pk) == "sent"

    (summary_request,) = fake_openai.bodies("summary")
    assert summary_request["store"] is False and "Sono Mario, ordine A-1234" in summary_request["input"][0]["content"]
    (created,) = fake_openai.conversations_created
    assert fake_openai.summary_text in created["items"][0]["content"]
    conversation.refresh_from_db()
    assert conversation.summary == fake_openai.summary_text
    assert conversation.openai_conversation_id not in ("", "conv_old")
    assert fake_openai.reply_requests[0]["conversation"] == conversation.openai_conversation_id
    assert conversation.messages.count() == 4


def test_a_recent_conversation_is_not_rotated(fake_openai, graph):
    # Started long ago, but the thread was active two hours ago.
    conversation = ConversationFactory(openai_conversation_id="conv_recent", openai_conversation_started_at=timezone.now() - timezone.timedelta(days=5))
    MessageFactory(conversation=conversation, text="prima", created_at=timezone.now() - timezone.timedelta(hours=2), handled_at=timezone.now())

    message = customer_says(conversation, "dopo")
    reply(message.pk)

    assert fake_openai.conversations_created == []
    assert fake_openai.reply_requests[0]["conversation"] == "conv_recent"


def test_a_model_call_that_times_out_is_retried_and_the_customer_answered_once(fake_openai, graph, settings):
    import time

    settings.OPENAI_TIMEOUT_SECONDS = 0.4
    slow_calls = []

    def first_call_hangs(body):
        if not slow_calls:
            slow_calls.append(body)
            # Past the read timeout, so the client gives up and tries again; short enough that the
            # (single-threaded) fake is free again before the retry's own timeout.
            time.sleep(0.6)

    fake_openai.on_reply = first_call_hangs
    conversation = ConversationFactory()

    message = customer_says(conversation, "Buongiorno")
    assert reply(message.pk) == "sent"

    assert len(fake_openai.reply_requests) == 2  # the timed-out call, then the retry
    assert bot_texts(conversation) == [fake_openai.default_reply]  # one answer, from the retry
    conversation.refresh_from_db()
    assert conversation.owner == Owner.BOT  # recovered: no hand-off, no holding message
    time.sleep(0.3)  # let the hung handler finish inside this test


def test_the_reply_instructions_warn_that_the_latest_text_may_hold_a_missing_detail(fake_openai, graph):
    conversation = ConversationFactory()
    question = customer_says(conversation, "Sono Mario Rossi, mario@example.com")
    fake_openai.replies.append("Grazie Mario!")

    assert reply(question.pk) == "sent"
    assert "non chiederlo di nuovo" in fake_openai.reply_requests[-1]["instructions"]


def test_info_tells_a_customer_without_a_number_its_username(fake_openai, graph):
    conversation = ConversationFactory(profile__username_only=True, profile__username="giulia.r")

    customer_says(conversation, "/info")

    [info] = bot_texts(conversation)
    assert "nome utente: @giulia.r" in info and "telefono" not in info and "+" not in info


def test_a_customer_text_longer_than_whatsapp_allows_reaches_the_model_cut_and_is_stored_whole(fake_openai, graph):
    conversation = ConversationFactory()
    text = "Ecco il mio ordine: " + "0123456789" * 1000  # 10,020 characters

    message = customer_says(conversation, text)
    assert reply(message.pk) == "sent"

    (extraction,) = fake_openai.extraction_requests
    (answer,) = fake_openai.reply_requests
    for request in (extraction, answer):
        assert request["input"] == [{"role": "user", "content": text[:CUSTOMER_TEXT_MAX]}] and CUSTOMER_TEXT_MAX == 4096
    message.refresh_from_db()
    assert message.text == text
