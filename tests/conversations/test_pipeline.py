"""The worker's side: claim, read receipt, acknowledgement, sweeping, statuses."""

import json

import pytest
from django.utils import timezone

from conversations.models import Message, MessageStatus, Owner
from conversations.services import pipeline
from conversations.services.outbound import message_deliver, message_send_text

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

MESSAGES_PATH = "/v23.0/106540352242922/messages"


def graph_requests(graph_api) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in graph_api.log]


@pytest.fixture
def graph_ok(graph_api):
    counter = iter(range(1, 1000))
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(
        lambda request: __import__("werkzeug").Response(
            json.dumps({"messages": [{"id": f"wamid.out{next(counter)}"}]}), content_type="application/json"
        )
    )
    return graph_api


def deliver_pending() -> None:
    for pk in Message.objects.filter(direction="out", status=MessageStatus.PENDING).values_list("pk", flat=True):
        message_deliver(message_id=pk)


def test_a_media_message_is_read_and_acknowledged_for_its_type(graph_ok, settings):
    settings.ACK_MEDIA_REPLY = "Ricevuto: {type}."
    image = MessageFactory(type="image", text="", wamid="wamid.img")

    assert pipeline.inbound_handle(message_id=image.pk) == "acknowledged"
    deliver_pending()

    read, reply = graph_requests(graph_ok)
    assert read == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.img", "typing_indicator": {"type": "text"}}
    assert reply["to"] == image.conversation.profile.wa_id
    assert reply["text"]["body"] == f"Ricevuto: {image.get_type_display().lower()}."  # in the business language
    image.refresh_from_db()
    assert image.handled_at is not None
    bot = Message.objects.get(direction="out")
    assert bot.author == "bot" and bot.status == MessageStatus.SENT


def test_handling_twice_sends_one_reply(graph_ok):
    audio = MessageFactory(type="audio", text="")

    pipeline.inbound_handle(message_id=audio.pk)
    Message.objects.filter(pk=audio.pk).update(locked_until=None)  # even with the lease gone
    assert pipeline.inbound_handle(message_id=audio.pk) == "skipped"

    assert Message.objects.filter(direction="out").count() == 1


def test_a_message_claimed_by_another_worker_is_left_alone(graph_ok):
    video = MessageFactory(type="video", text="", locked_until=timezone.now() + timezone.timedelta(minutes=1))

    assert pipeline.inbound_handle(message_id=video.pk) == "skipped"
    assert not Message.objects.filter(direction="out").exists()


def test_no_bot_reply_while_a_human_owns_the_conversation(graph_ok):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    document = MessageFactory(conversation=conversation, type="document", text="")

    pipeline.inbound_handle(message_id=document.pk)

    assert not Message.objects.filter(direction="out").exists()
    document.refresh_from_db()
    assert document.handled_at is not None


@pytest.mark.parametrize("kind", ["reaction", "system"])
def test_reactions_and_system_notices_get_no_acknowledgement(graph_ok, kind):
    message = MessageFactory(type=kind)
    pipeline.inbound_handle(message_id=message.pk)
    assert not Message.objects.filter(direction="out").exists()


def test_the_sweeper_queues_only_old_unhandled_unclaimed_messages(redis_queue, settings):
    settings.INBOUND_SWEEP_AFTER_SECONDS = 60
    old = timezone.now() - timezone.timedelta(minutes=2)
    stale = MessageFactory(created_at=old)
    MessageFactory(created_at=timezone.now())  # too recent: its task is probably on the way
    MessageFactory(created_at=old, handled_at=timezone.now())  # done
    MessageFactory(created_at=old, locked_until=timezone.now() + timezone.timedelta(minutes=3))  # being worked on
    expired = MessageFactory(created_at=old, locked_until=timezone.now() - timezone.timedelta(seconds=1))  # worker died

    assert pipeline.inbound_sweep() == 2

    assert sorted(a[0] for a in redis_queue.task_args()) == sorted([stale.pk, expired.pk])
    assert set(redis_queue.task_names()) == {"conversations.tasks.inbound_handle"}


def test_the_sweeper_queues_pending_outbound_messages(redis_queue):
    conversation = ConversationFactory()
    old = message_send_text(conversation=conversation, text="hello")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=5))
    message_send_text(conversation=conversation, text="just now")

    assert pipeline.outbound_sweep() == 1
    assert redis_queue.task_names() == ["conversations.tasks.message_deliver"]
    assert redis_queue.task_args() == [[old.pk]]


def test_a_stored_message_is_picked_up_by_the_sweeper_after_a_broker_outage(graph_ok, post_webhook, channel, meta_example, broker_down, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(meta_example("Image Message")).status_code == 200
    inbound = Message.objects.get()
    Message.objects.filter(pk=inbound.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=2))

    # The sweeper's query finds it; handling it then answers as usual.
    swept = list(
        Message.objects.filter(direction="in", handled_at__isnull=True, created_at__lte=timezone.now() - timezone.timedelta(seconds=60))
    )
    assert swept == [inbound]
    pipeline.inbound_handle(message_id=inbound.pk)
    assert Message.objects.filter(direction="out").count() == 1


def status_payload(wamid: str, status: str, ts: int, errors: list | None = None) -> dict:
    item = {"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": "393331234567"}
    if errors:
        item["errors"] = errors
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"}, "statuses": [item]},
                    }
                ],
            }
        ],
    }


@pytest.fixture
def sent_message(channel):
    conversation = ConversationFactory(channel=channel)
    return MessageFactory(conversation=conversation, direction="out", author="bot", wamid="wamid.out", status=MessageStatus.SENT, status_rank=1)


def test_statuses_move_forward_and_never_back(post_webhook, sent_message):
    post_webhook(status_payload("wamid.out", "delivered", 1750000010))
    post_webhook(status_payload("wamid.out", "read", 1750000020))
    post_webhook(status_payload("wamid.out", "delivered", 1750000030))  # late

    sent_message.refresh_from_db()
    assert sent_message.status == "read"
    assert sent_message.delivered_at.timestamp() == 1750000010
    assert sent_message.read_at.timestamp() == 1750000020
    assert sent_message.conversation.revision >= 2


def test_a_voice_note_can_be_played(post_webhook, sent_message):
    post_webhook(status_payload("wamid.out", "read", 1750000020))
    post_webhook(status_payload("wamid.out", "played", 1750000030))
    sent_message.refresh_from_db()
    assert sent_message.status == "played" and sent_message.played_at.timestamp() == 1750000030


def test_a_failed_status_records_metas_error(post_webhook, sent_message):
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
        }
    ]
    post_webhook(status_payload("wamid.out", "failed", 1750000040, errors))

    sent_message.refresh_from_db()
    assert sent_message.status == "failed"
    assert (sent_message.error_code, sent_message.error_title, sent_message.error_detail) == (
        "131026",
        "Message undeliverable",
        "Message Undeliverable.",
    )


def test_a_status_that_arrives_before_the_wamid_is_stored_is_applied_after_the_send(graph_api, post_webhook, channel):
    graph_api.expect_request(MESSAGES_PATH).respond_with_json({"messages": [{"id": "wamid.early"}]})
    outbound = message_send_text(conversation=ConversationFactory(channel=channel), text="hi")
    post_webhook(status_payload("wamid.early", "delivered", 1750000050))  # Meta was faster than our UPDATE

    message_deliver(message_id=outbound.pk)

    outbound.refresh_from_db()
    assert outbound.status == "delivered" and outbound.delivered_at.timestamp() == 1750000050
