"""With no OpenAI key the offline agent answers: Italian first, English when the customer writes English."""

import pytest

from conversations.agent.offline import details_extract, language_detect
from conversations.models import Owner
from tests.conversations.conftest import handle, reply, sent_to_whatsapp
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.profiles.factories import guessed, stated


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


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mi chiamo Anna Maria", {"first_name": stated("Anna"), "last_name": stated("Maria"), "language": "it"}),
        ("sono contento del servizio", {"language": "it"}),
        ("my order #AB-77 has not arrived", {"order_number": stated("AB-77"), "language": "en"}),
        ("scrivete a anna@example.org grazie", {"email": stated("anna@example.org"), "language": "it"}),
        ("I work for Globex Corporation", {"company": stated("Globex Corporation"), "language": "en"}),
        ("Sono Giulia", {"first_name": guessed("Giulia"), "language": "it"}),
    ],
)
def test_the_offline_rules_pick_details_out_of_the_text_saying_how_sure_they_are(text, expected):
    assert details_extract(text=text) == expected


@pytest.mark.parametrize(
    "text, first, last",
    [
        ("mi chiamo Giulia Bianchi", "Giulia", "Bianchi"),
        ("Mi chiamo mario rossi e vorrei sapere dov'è il pacco", "mario", "rossi"),
        ("il mio nome è Anna Maria Rossi", "Anna Maria", "Rossi"),
        ("my name is John Smith and I need help", "John", "Smith"),
        ("Hello, my name's Seán O’Brien.", "Seán", "O’Brien"),
        ("mi chiamo Maria De Luca", "Maria", "De Luca"),
        ("mi chiamo Gian Luca Della Valle", "Gian Luca", "Della Valle"),
        ("mi chiamo Anne-Marie D'Angelo", "Anne-Marie", "D'Angelo"),
        ("my name is Ludwig van Beethoven", "Ludwig", "van Beethoven"),
        ("mi chiamo giulia, ho un problema", "giulia", None),
    ],
)
def test_a_name_said_outright_is_read_as_stated_with_particles_and_apostrophes(text, first, last):
    found = details_extract(text=text)

    assert found["first_name"] == stated(first)
    assert found.get("last_name") == (stated(last) if last else None)


@pytest.mark.parametrize(
    "text, first, last",
    [
        ("sono Giulia", "Giulia", None),
        ("Ciao, sono Giulia Bianchi e vorrei sapere gli orari", "Giulia", "Bianchi"),
        ("Buongiorno! Io sono Luca D'Angelo", "Luca", "D'Angelo"),
        ("Buongiorno sono Marco di Acme", "Marco", None),  # "di Acme": where he works, not his surname
        ("Hi, I'm John", "John", None),
        ("Hello, I am Ludwig van Beethoven", "Ludwig", "van Beethoven"),
    ],
)
def test_sono_or_i_am_before_a_capitalised_name_is_only_a_guess(text, first, last):
    found = details_extract(text=text)

    assert found["first_name"] == guessed(first)
    assert found.get("last_name") == (guessed(last) if last else None)


@pytest.mark.parametrize(
    "text",
    [
        "quali sono i vostri orari?",
        "Quali sono i Vostri orari?",
        "sono le 5",
        "sono in ritardo per il ritiro",
        "Sono d'accordo",
        "ciao sono l'intestatario dell'ordine",
        "i am looking for my order",
        "I'm Sorry, I am late",
        "I am Italian",
        "il mio nome è sbagliato sull'ordine",
        "my name is on the order",
        "mi chiamo, scusate, più tardi",
    ],
)
def test_no_rule_takes_an_ordinary_sentence_for_a_name(text):
    found = details_extract(text=text)

    assert "first_name" not in found and "last_name" not in found


@pytest.mark.parametrize("text", ["la vostra azienda è chiusa domani?", "lavoro in ufficio tutto il giorno"])
def test_no_rule_takes_an_ordinary_sentence_for_a_company(text):
    assert "company" not in details_extract(text=text)


@pytest.mark.django_db(transaction=True)
def test_a_question_never_replaces_the_name_the_customer_gave(offline, graph):
    # The issue: "quali sono i vostri orari?" turned "Giulia Bianchi" into "I Vostri".
    conversation = ConversationFactory()
    say(conversation, "Buongiorno, mi chiamo Giulia Bianchi")
    say(conversation, "quali sono i vostri orari?")
    say(conversation, "Sono Marta")  # a guess: it fills nothing that is known

    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name) == ("Giulia", "Bianchi")
    assert profile.provenance["first_name"]["confidence"] == "stated"
    assert last_bot_text(conversation) == "Per quale azienda ci scrivi?"


@pytest.mark.django_db(transaction=True)
def test_a_guessed_name_fills_an_empty_profile_and_a_stated_one_corrects_it(offline, graph):
    conversation = ConversationFactory()
    say(conversation, "Ciao, sono Giulia")
    profile = conversation.profile
    profile.refresh_from_db()
    assert profile.first_name == "Giulia" and profile.provenance["first_name"]["confidence"] == "guessed"

    say(conversation, "scusate, mi chiamo Giuliana Bianchi")

    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name) == ("Giuliana", "Bianchi")
    assert profile.provenance["first_name"]["confidence"] == "stated"


def test_language_detection_prefers_nothing_when_unsure():
    assert language_detect("ok") == ""
    assert language_detect("Hello, what is the price?") == "en"
    assert language_detect("Buongiorno, vorrei un'informazione") == "it"
