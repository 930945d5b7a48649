"""A stored customer message's turn (`turn.message_handle`): claimed once, marked read, then
what it asks for — nothing, a person's attention, the acknowledgement of media, a command's
answer or the agent's (`decisions.inbound_action`)."""

import json

import pytest
from django.utils import timezone
from werkzeug import Response

from conversations.models import Message, MessageStatus, Owner

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import MESSAGES_PATH, handle, sent_to_whatsapp

pytestmark = pytest.mark.django_db(transaction=True)


def graph_requests(graph_api) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in graph_api.log]


def test_a_media_message_is_read_and_acknowledged_for_its_type(graph):
    image = MessageFactory(type="image", text="", wamid="wamid.img")  # no media stored: nothing for a model to see

    assert handle(image.pk) == "acknowledged"

    read, reply = sorted(graph_requests(graph), key=lambda body: body.get("status") != "read")
    assert read == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.img", "typing_indicator": {"type": "text"}}
    assert reply["to"] == image.conversation.profile.wa_id
    # The built-in text, in Italian (the customer's language is not known yet).
    assert reply["text"]["body"] == "Grazie, abbiamo ricevuto il tuo contenuto (immagine). Un operatore lo esaminerà al più presto."
    image.refresh_from_db()
    assert image.handled_at is not None and image.attempts == 1
    bot = Message.objects.get(direction="out")
    assert bot.author == "bot" and bot.status == MessageStatus.SENT and bot.bot_config_version_id


def test_handling_twice_sends_one_reply(graph):
    audio = MessageFactory(type="audio", text="")

    assert handle(audio.pk) == "acknowledged"
    Message.objects.filter(pk=audio.pk).update(locked_until=None)  # even with the lease gone
    assert handle(audio.pk) == "skipped"

    assert Message.objects.filter(direction="out").count() == 1


def test_a_message_claimed_by_another_worker_is_left_alone(graph):
    video = MessageFactory(type="video", text="", locked_until=timezone.now() + timezone.timedelta(minutes=1))

    assert handle(video.pk) == "skipped"
    assert not Message.objects.filter(direction="out").exists()
    assert graph.log == []  # not even marked read


def test_no_bot_reply_while_a_human_owns_the_conversation(graph):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    document = MessageFactory(conversation=conversation, type="document", text="")

    assert handle(document.pk) == "handled"

    assert not Message.objects.filter(direction="out").exists()
    document.refresh_from_db()
    assert document.handled_at is not None


@pytest.mark.parametrize("kind", ["reaction", "system"])
def test_reactions_and_system_notices_get_no_acknowledgement(graph, kind):
    message = MessageFactory(type=kind)

    assert handle(message.pk) == "handled"

    assert not Message.objects.filter(direction="out").exists()
    message.refresh_from_db()
    assert message.handled_at is not None


def test_a_read_receipt_meta_refuses_does_not_stop_the_reply(graph_api, offline, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0

    def answer(request):
        if json.loads(request.get_data()).get("status") == "read":
            return Response(json.dumps({"error": {"message": "Invalid parameter", "code": 100}}), status=400, content_type="application/json")
        return Response(json.dumps({"messages": [{"id": "wamid.reply"}]}), content_type="application/json")

    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(answer)
    message = MessageFactory(conversation=ConversationFactory(), text="Buongiorno")

    assert handle(message.pk) == "sent"

    assert len(sent_to_whatsapp(graph_api)) == 1
    assert Message.objects.get(direction="out").wamid == "wamid.reply"


@pytest.mark.parametrize("kind", ["interactive", "button"])
def test_a_button_or_list_reply_is_words_for_the_agent(offline, graph, kind, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 0
    message = MessageFactory(type=kind, text="Spedizione")

    assert handle(message.pk) == "sent"
    assert Message.objects.get(direction="out").text.startswith("Ciao!")  # the offline agent's greeting
