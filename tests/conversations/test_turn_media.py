"""Media the agent understands, end to end through the turn: a voice note transcribed by the
fake OpenAI (`/audio/transcriptions`, multipart fields validated against OpenAI's spec) and
answered from its transcript; an image given to the model as `input_image` with its caption;
everything else acknowledged in the customer's language. The media is stored as the fetch
(another part of issue 12) leaves it: a `MediaFile` with its bytes in the default storage."""

from __future__ import annotations

import base64

import pytest
from django.core.files.base import ContentFile

from conversations.models import MediaFile, MediaState, Message, Owner
from conversations.services.botconfig import bot_config_for_channel, bot_config_save

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import handle, reply, sent_to_whatsapp

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quiet_period")]

# A voice note's first bytes (an Ogg page header) and a 1×1 PNG: the turn only passes them on.
VOICE = b"OggS\x00\x02" + bytes(58)
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def media_message(conversation, *, type: str, content: bytes, mime_type: str, caption: str = "", state=MediaState.STORED) -> Message:
    """A customer's media message as the webhook and the fetch leave it, its turn not run yet."""
    message = MessageFactory(conversation=conversation, type=type, text=caption, media={"id": "1013", "mime_type": mime_type})
    media = MediaFile(message=message, state=state, mime_type=mime_type, size=len(content))
    if state == MediaState.STORED:
        media.file.save(f"{type}.bin", ContentFile(content), save=False)
    media.save()
    return message


def italian_customer(**kwargs):
    conversation = ConversationFactory(**kwargs)
    conversation.profile.language = "it"
    conversation.profile.save(update_fields=["language"])
    return conversation


def test_a_voice_note_is_transcribed_and_answered_from_its_transcript(fake_openai, graph):
    conversation = italian_customer()
    revision = conversation.revision
    fake_openai.extract = lambda text: {"first_name": "Mario", "last_name": "Rossi"} if "Mario Rossi" in text else {}
    voice = media_message(conversation, type="audio", content=VOICE, mime_type="audio/ogg; codecs=opus")

    assert handle(voice.pk) == "queued"

    (asked,) = fake_openai.transcription_requests
    assert asked["model"] == "gpt-transcribe" and asked["language"] == "it"
    assert asked["file"] == ("voice-note.ogg", VOICE, "audio/ogg")
    voice.refresh_from_db()
    assert voice.transcript == fake_openai.transcript and voice.text == ""
    conversation.refresh_from_db()
    assert conversation.revision > revision  # the console shows the words
    # Extraction from the transcript, stored on the profile with the voice note as its source.
    (extraction,) = fake_openai.extraction_requests
    assert extraction["input"] == [{"role": "user", "content": fake_openai.transcript}]
    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name) == ("Mario", "Rossi")
    assert profile.provenance["first_name"]["message_id"] == voice.pk

    assert reply(voice.pk) == "sent"
    (answer,) = fake_openai.reply_requests
    assert answer["input"] == [{"role": "user", "content": fake_openai.transcript}]
    assert sent_to_whatsapp(graph) == [fake_openai.default_reply]
    voice.refresh_from_db()
    assert voice.handled_at is not None


def test_a_voice_note_that_cannot_be_transcribed_gets_the_acknowledgement_and_stays(fake_openai, graph):
    conversation = italian_customer()
    fake_openai.transcription_failures.append(400)  # refused for good: not tried again
    voice = media_message(conversation, type="audio", content=VOICE, mime_type="audio/ogg")

    assert handle(voice.pk) == "acknowledged"

    assert len(fake_openai.transcription_requests) == 1
    assert fake_openai.reply_requests == [] and fake_openai.extraction_requests == []
    assert sent_to_whatsapp(graph) == [
        "Grazie, abbiamo ricevuto il tuo contenuto (messaggio vocale). Un operatore lo esaminerà al più presto."
    ]
    voice.refresh_from_db()
    assert voice.transcript == "" and voice.handled_at is not None
    assert voice.error_code == "openai_400" and "fake failure 400" in voice.error_detail  # shown to staff
    assert MediaFile.objects.get(pk=voice.pk).state == MediaState.STORED  # kept, for a person to hear


def test_in_a_person_s_conversation_a_voice_note_is_transcribed_and_extracted_not_answered(fake_openai, graph):
    conversation = italian_customer(owner=Owner.HUMAN)
    fake_openai.extract = lambda text: {"first_name": "Mario"} if "Mario" in text else {}
    voice = media_message(conversation, type="audio", content=VOICE, mime_type="audio/ogg")

    assert handle(voice.pk) == "handled"

    voice.refresh_from_db()
    assert voice.transcript == fake_openai.transcript and voice.handled_at is not None
    conversation.profile.refresh_from_db()
    assert conversation.profile.first_name == "Mario"
    assert fake_openai.reply_requests == [] and sent_to_whatsapp(graph) == []


def test_an_image_goes_to_the_model_with_its_caption_in_the_burst_s_reply(fake_openai, graph):
    conversation = italian_customer()
    fake_openai.extract = lambda text: {"order_number": "A-1234"} if "A-1234" in text else {}
    text = MessageFactory(conversation=conversation, text="Buongiorno, il mio ordine è arrivato così")
    assert handle(text.pk) == "queued"
    image = media_message(conversation, type="image", content=PNG, mime_type="image/png", caption="Ordine A-1234, vetro rotto")

    assert handle(image.pk) == "queued"
    assert reply(text.pk) == "superseded"  # the image is newer: its task answers the burst
    assert reply(image.pk) == "sent"

    (answer,) = fake_openai.reply_requests  # validated against OpenAI's spec at teardown
    assert answer["input"] == [
        {"role": "user", "content": "Buongiorno, il mio ordine è arrivato così"},
        {"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode(), "detail": "auto"},
            {"type": "input_text", "text": "Ordine A-1234, vetro rotto"},
        ]},
    ]  # fmt: skip
    # The extraction reads the caption only.
    assert fake_openai.extraction_requests[-1]["input"] == [{"role": "user", "content": "Ordine A-1234, vetro rotto"}]
    conversation.profile.refresh_from_db()
    assert conversation.profile.order_numbers == ["A-1234"]
    text.refresh_from_db(), image.refresh_from_db()
    assert text.handled_at is not None and image.handled_at is not None


def test_an_image_larger_than_the_cap_reaches_the_model_as_its_caption(fake_openai, graph, settings):
    settings.OPENAI_IMAGE_MAX_BYTES = 10
    image = media_message(italian_customer(), type="image", content=PNG, mime_type="image/png", caption="Che ne dite?")

    handle(image.pk)
    assert reply(image.pk) == "sent"

    assert fake_openai.reply_requests[0]["input"] == [{"role": "user", "content": "Che ne dite?"}]


def test_a_document_is_acknowledged_in_the_customer_s_language(fake_openai, graph):
    english = ConversationFactory()
    english.profile.language = "en"
    english.profile.save(update_fields=["language"])
    italian = italian_customer()

    assert handle(media_message(english, type="document", content=b"%PDF-1.7", mime_type="application/pdf").pk) == "acknowledged"
    assert handle(media_message(italian, type="document", content=b"%PDF-1.7", mime_type="application/pdf").pk) == "acknowledged"

    assert sent_to_whatsapp(graph) == [
        "Thank you, we have received your document. A colleague will look at it shortly.",
        "Grazie, abbiamo ricevuto il tuo contenuto (documento). Un operatore lo esaminerà al più presto.",
    ]
    assert fake_openai.calls == []  # nothing for the model


def test_the_bot_configuration_s_own_acknowledgement_is_used_when_set(fake_openai, graph):
    conversation = ConversationFactory()
    conversation.profile.language = "en"
    conversation.profile.save(update_fields=["language"])
    config = bot_config_for_channel(channel=conversation.channel).config
    config.fixed_messages = {"media": {"en": "Got your {type} {with braces}, a colleague will look at it."}}
    bot_config_save(config=config)

    assert handle(media_message(conversation, type="video", content=b"\x00", mime_type="video/mp4").pk) == "acknowledged"

    assert sent_to_whatsapp(graph) == ["Got your video {with braces}, a colleague will look at it."]


def test_without_an_ai_voice_notes_and_images_are_acknowledged_in_the_customer_s_language(offline, graph):
    conversation = ConversationFactory()
    conversation.profile.language = "en"
    conversation.profile.save(update_fields=["language"])

    assert handle(media_message(conversation, type="audio", content=VOICE, mime_type="audio/ogg").pk) == "acknowledged"
    assert handle(media_message(conversation, type="image", content=PNG, mime_type="image/png").pk) == "acknowledged"

    assert sent_to_whatsapp(graph) == [
        "Thank you, we have received your voice message. A colleague will look at it shortly.",
        "Thank you, we have received your image. A colleague will look at it shortly.",
    ]


def test_without_an_ai_a_stored_image_does_not_hold_back_the_answer_to_an_earlier_text(offline, graph):
    # The offline agent acknowledges images: one stored after a text is not words of the
    # text's burst, so the text's debounced reply goes out instead of waiting for a newer
    # message's turn (the image's acknowledgement) that would never answer it.
    conversation = ConversationFactory()
    conversation.profile.language = "en"
    conversation.profile.save(update_fields=["language"])
    text = MessageFactory(conversation=conversation, text="Hello, my order arrived broken")
    assert handle(text.pk) == "queued"
    image = media_message(conversation, type="image", content=PNG, mime_type="image/png")

    assert reply(text.pk) == "sent"
    assert handle(image.pk) == "acknowledged"
    text.refresh_from_db()
    assert text.handled_at is not None
    assert len(sent_to_whatsapp(graph)) == 2


def test_media_that_could_not_be_fetched_is_acknowledged(fake_openai, graph):
    voice = media_message(italian_customer(), type="audio", content=VOICE, mime_type="audio/ogg", state=MediaState.EXPIRED)

    assert handle(voice.pk) == "acknowledged"
    assert fake_openai.transcription_requests == []
