"""With no OpenAI key the offline agent answers: Italian first, English when the customer writes English."""

import pytest

from conversations.agent.offline import details_extract, language_detect
from conversations.agent.service import burst_answer
from conversations.models import Owner
from conversations.services import pipeline

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import deliver_pending, sent_to_whatsapp

pytestmark = pytest.mark.django_db


def say(conversation, text):
    message = MessageFactory(conversation=conversation, text=text)
    pipeline.inbound_handle(message_id=message.pk)
    return burst_answer(message_id=message.pk)


def last_bot_text(conversation) -> str:
    return conversation.messages.filter(direction="out").order_by("-pk").values_list("text", flat=True).first()


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
    deliver_pending()
    assert len(sent_to_whatsapp(graph)) == 4


def test_it_answers_in_english_when_the_customer_writes_english(offline, graph):
    conversation = ConversationFactory()

    say(conversation, "Hi, my name is John Smith and I need help with my order")
    assert last_bot_text(conversation) == "Hi John! I'm the virtual assistant, here to help. Which company are you writing for?"
    say(conversation, "/info")
    assert last_bot_text(conversation).startswith("Here is what we hold about you:")
    assert "first name: John" in last_bot_text(conversation)


def test_offline_commands_and_handoff_work_too(offline, graph):
    conversation = ConversationFactory()
    say(conversation, "Ciao")
    say(conversation, "/storia")
    assert "Tu: Ciao" in last_bot_text(conversation)

    assert say(conversation, "voglio parlare con un operatore") == "handoff"
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mi chiamo Anna Maria", {"first_name": "Anna", "last_name": "Maria", "language": "it"}),
        ("sono contento del servizio", {"language": "it"}),
        ("my order #AB-77 has not arrived", {"order_number": "AB-77", "language": "en"}),
        ("scrivete a anna@example.org grazie", {"email": "anna@example.org", "language": "it"}),
        ("I work for Globex Corporation", {"company": "Globex Corporation", "language": "en"}),
    ],
)
def test_the_offline_rules_pick_details_out_of_the_text(text, expected):
    assert details_extract(text=text) == expected


def test_language_detection_prefers_nothing_when_unsure():
    assert language_detect("ok") == ""
    assert language_detect("Hello, what is the price?") == "en"
    assert language_detect("Buongiorno, vorrei un'informazione") == "it"
