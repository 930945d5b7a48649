"""With no OpenAI key the offline agent answers: Italian first, English when the customer writes English."""

import pytest

from conversations.agent.offline import details_extract, language_detect
from conversations.models import Owner
from profiles.models import Confidence, ExtractedValue

from tests.conversations.conftest import handle, reply, sent_to_whatsapp
from tests.conversations.factories import ConversationFactory, MessageFactory


def say(conversation, text):
    """The customer's text handled, then (the quiet period over) answered: the reply's outcome."""
    message = MessageFactory(conversation=conversation, text=text)
    handle(message.pk)
    return reply(message.pk)


def last_bot_text(conversation) -> str:
    return conversation.messages.filter(direction="out").order_by("-pk").values_list("text", flat=True).first()


@pytest.mark.django_db(transaction=True)
def test_it_greets_and_collects_every_field_in_italian_never_asking_twice(offline, graph):
    conversation = ConversationFactory()

    assert say(conversation, "Buongiorno") == "sent"
    assert last_bot_text(conversation) == "Ciao! Sono l'assistente virtuale: sono qui per aiutarti. Come ti chiami?"

    say(conversation, "Mi chiamo mario rossi")
    assert last_bot_text(conversation) == "Grazie Mario, ho preso nota. Per quale azienda ci scrivi?"

    say(conversation, "lavoro per Acme Spa, la mia mail è Mario.Rossi@Acme.it")
    assert last_bot_text(conversation) == "Grazie Mario, ho preso nota. Hai un numero d'ordine a cui fai riferimento?"

    say(conversation, "sì, l'ordine n. 2024-551")
    assert last_bot_text(conversation).endswith("Abbiamo tutti i dati che ci servono. Scrivi pure la tua richiesta: un collega ti risponderà al più presto.")

    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name, profile.company, profile.email) == ("Mario", "Rossi", "Acme Spa", "mario.rossi@acme.it")
    assert profile.order_numbers == ["2024-551"] and profile.language == "it"
    assert profile.provenance["email"]["source"] == "ai"
    assert len(sent_to_whatsapp(graph)) == 4  # each reply delivered by its own turn


@pytest.mark.django_db(transaction=True)
def test_it_answers_in_english_when_the_customer_writes_english(offline, graph):
    conversation = ConversationFactory()

    say(conversation, "Hi, my name is John Smith and I need help with my order")
    assert last_bot_text(conversation) == "Hi John! I'm the virtual assistant, here to help. Which company are you writing for?"
    say(conversation, "/info")
    assert last_bot_text(conversation).startswith("Here is what we hold about you:")
    assert "first name: John" in last_bot_text(conversation)


@pytest.mark.django_db(transaction=True)
def test_offline_commands_and_handoff_work_too(offline, graph):
    conversation = ConversationFactory()
    say(conversation, "Ciao")
    say(conversation, "/storia")
    assert "Tu: Ciao" in last_bot_text(conversation)

    assert say(conversation, "voglio parlare con un operatore") == "handoff"
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN


def stated(value: str) -> ExtractedValue:
    return ExtractedValue(value, Confidence.STATED)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mi chiamo Anna Maria", {"first_name": stated("Anna"), "last_name": stated("Maria"), "language": "it"}),
        ("sono contento del servizio", {"language": "it"}),
        ("my order #AB-77 has not arrived", {"order_number": stated("AB-77"), "language": "en"}),
        ("scrivete a anna@example.org grazie", {"email": stated("anna@example.org"), "language": "it"}),
        ("I work for Globex Corporation", {"company": stated("Globex Corporation"), "language": "en"}),
        ("Sono Giulia", {"first_name": ExtractedValue("Giulia", Confidence.GUESSED), "language": "it"}),
    ],
)
def test_the_offline_rules_pick_details_out_of_the_text_saying_how_sure_they_are(text, expected):
    assert details_extract(text=text) == expected


def test_language_detection_prefers_nothing_when_unsure():
    assert language_detect("ok") == ""
    assert language_detect("Hello, what is the price?") == "en"
    assert language_detect("Buongiorno, vorrei un'informazione") == "it"
