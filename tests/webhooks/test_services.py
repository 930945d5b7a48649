"""A delivery received (`webhooks.services`): verified, kept as an event, handed whole to
`conversations.ingest.delivery_ingest`, which commits the event row with the messages and
queues their turns after the commit.

These run outside any test transaction (the web process's own path: the group commit, a
real COMMIT, the turns queued on Redis after it), so what they see is what was committed.
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from conversations.models import Conversation, Message, Provider, StatusUpdate
from integrations.meta import MetaWebhooks
from integrations.meta.signature import sign
from profiles.models import ClientProfile
from tests.conversations.factories import APP_SECRET, ChannelFactory
from webhooks.models import Outcome, WebhookEvent
from webhooks.services import UNVERIFIED_BODY_LIMIT, webhook_event_replay, webhook_receive

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "X-Hub-Signature-256"


def receive(payload, *, secret: str = APP_SECRET, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return webhook_receive(body=body, headers={HEADER: sign(body, secret)} if secret else {})


def texts(meta_example, *messages: tuple[str, str], phone_number_id: str = "106540352242922") -> dict:
    """Meta's text example carrying these (wamid, sender) messages."""
    payload = meta_example("Text Message")
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = phone_number_id
    value["contacts"] = [{"profile": {"name": f"Customer {wa_id}"}, "wa_id": wa_id} for _, wa_id in messages]
    value["messages"] = [
        {"from": wa_id, "id": wamid, "timestamp": "1749416383", "type": "text", "text": {"body": f"text of {wamid}"}}
        for wamid, wa_id in messages
    ]
    return payload


def test_the_event_row_commits_with_the_messages_and_their_turns_are_queued_after(channel, meta_example, redis_queue):
    receipt = receive(texts(meta_example, ("wamid.e1", "390000000001"), ("wamid.e2", "390000000002")))

    assert receipt.status == 200
    event = WebhookEvent.objects.get()
    assert receipt.event.pk == event.pk  # the receipt's row is the committed one
    assert (event.outcome, event.channel_id, event.message_count, event.status_count) == (Outcome.PROCESSED, channel.pk, 2, 0)
    assert event.detail == "2 new message(s), 0 duplicate(s), 0 status(es)" and event.processed_at
    stored = list(Message.objects.order_by("pk").values_list("pk", "wamid"))
    assert [w for _, w in stored] == ["wamid.e1", "wamid.e2"]
    assert receipt.new_message_ids == [pk for pk, _ in stored]
    assert sorted(args[0] for args in redis_queue.task_args()) == receipt.new_message_ids
    assert set(redis_queue.task_names()) == {"conversations.tasks.inbound_handle"}


def test_a_delivery_the_database_refuses_stores_nothing_keeps_the_event_as_failed_and_asks_for_a_retry(
    channel, meta_example, redis_queue, database_refuses
):
    refused = "390000000002"  # the transaction fails at the first statement
    database_refuses(ClientProfile, "wa_id", refused)
    receipt = receive(texts(meta_example, ("wamid.ok", "390000000001"), ("wamid.bad", refused)))

    assert receipt.status == 500
    # Nothing of the delivery's transaction: no profile, conversation, message or processed event.
    assert not ClientProfile.objects.exists() and not Conversation.objects.exists() and not Message.objects.exists()
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.FAILED and event.signature_valid and event.channel is None
    assert "DataError" in event.detail
    assert json.loads(event.body)["entry"][0]["changes"][0]["value"]["messages"][1]["from"] == refused  # kept whole, for a replay
    assert len(redis_queue) == 0
    # Meta's retry of the same delivery, once the cause is gone, is stored as any other.
    assert receive(texts(meta_example, ("wamid.ok", "390000000001"))).status == 200
    assert Message.objects.get().wamid == "wamid.ok"


def test_a_duplicate_delivery_stores_and_queues_nothing(channel, meta_example, redis_queue):
    payload = texts(meta_example, ("wamid.d1", "390000000001"))
    first = receive(payload)
    conversation = Conversation.objects.get()

    again = receive(payload)

    assert again.status == 200 and again.new_message_ids == []
    assert Message.objects.count() == 1
    after = Conversation.objects.get()
    assert (after.unread_count, after.revision) == (conversation.unread_count, conversation.revision)  # the thread did not move
    assert [args[0] for args in redis_queue.task_args()] == first.new_message_ids
    assert WebhookEvent.objects.get(pk=again.event.pk).detail == "0 new message(s), 1 duplicate(s), 0 status(es)"


def test_a_message_carried_twice_in_one_delivery_is_stored_and_queued_once(channel, meta_example, redis_queue):
    receipt = receive(texts(meta_example, ("wamid.twice", "390000000001"), ("wamid.twice", "390000000001")))

    assert receipt.status == 200 and len(receipt.new_message_ids) == 1
    assert Conversation.objects.get().unread_count == 1
    assert len(redis_queue) == 1
    assert WebhookEvent.objects.get().detail == "1 new message(s), 1 duplicate(s), 0 status(es)"


def test_an_unknown_number_is_unknown_channel_and_its_items_are_dropped(channel, meta_example, redis_queue):
    payload = texts(meta_example, ("wamid.ours", "390000000001"))
    stranger = texts(meta_example, ("wamid.theirs", "390000000002"), phone_number_id="555000")
    payload["entry"].append(stranger["entry"][0])

    receipt = receive(payload)

    assert receipt.status == 200  # Meta must not retry it: no retry would find a channel
    assert list(Message.objects.values_list("wamid", flat=True)) == ["wamid.ours"]
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.UNKNOWN_CHANNEL
    # The detail also says what was stored for the number that is ours.
    assert event.detail == "no active channel for phone_number_id 555000; stored for the others: 1 new message(s), 0 duplicate(s), 0 status(es)"
    assert event.message_count == 2 and event.channel == channel
    assert [args[0] for args in redis_queue.task_args()] == receipt.new_message_ids


def test_a_deactivated_number_sharing_its_app_with_an_active_one_is_unknown_channel(channel, meta_example):
    ChannelFactory(phone_number_id="999", app_secret=APP_SECRET)  # another number of the same Meta app
    channel.is_active = False
    channel.save()

    receipt = receive(texts(meta_example, ("wamid.late", "390000000001")))

    assert receipt.status == 200
    assert WebhookEvent.objects.get().outcome == Outcome.UNKNOWN_CHANNEL
    assert not Message.objects.exists()


def test_a_deactivated_number_whose_app_has_no_active_number_cannot_be_verified(channel, meta_example):
    ChannelFactory(phone_number_id="999", app_secret="another-app-secret-0123")
    channel.is_active = False
    channel.save()

    receipt = receive(texts(meta_example, ("wamid.late", "390000000001")))

    # Its secret is not among the active channels': nothing can tell the delivery from a forgery.
    assert receipt.status == 403 and WebhookEvent.objects.get().outcome == Outcome.BAD_SIGNATURE
    assert not Message.objects.exists()


def test_a_body_signed_by_another_apps_secret_is_refused_and_not_kept_whole(channel, meta_example):
    ChannelFactory(phone_number_id="222", app_secret="other-app-secret-xyz")
    payload = texts(meta_example, ("wamid.forged", "390000000001"))  # for `channel`, signed by the other app
    payload["padding"] = "x" * (UNVERIFIED_BODY_LIMIT * 2)

    receipt = receive(payload, secret="other-app-secret-xyz")

    assert receipt.status == 403 and receipt.new_message_ids == []
    assert not Message.objects.exists() and not ClientProfile.objects.exists()
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.signature_valid) == (Outcome.BAD_SIGNATURE, False)
    assert event.detail == "not signed by the app of ['106540352242922']"
    assert len(event.body) == UNVERIFIED_BODY_LIMIT


def test_an_unsigned_body_is_kept_truncated_with_the_reason(channel, meta_example):
    payload = texts(meta_example, ("wamid.unsigned", "390000000001"))
    payload["padding"] = "x" * (UNVERIFIED_BODY_LIMIT * 2)

    missing = receive(payload, secret="")
    wrong = receive(payload, secret="guessed-secret")

    assert (missing.status, wrong.status) == (403, 403)
    details = dict(WebhookEvent.objects.values_list("pk", "detail"))
    assert details == {missing.event.pk: "X-Hub-Signature-256 missing", wrong.event.pk: "X-Hub-Signature-256 does not match"}
    assert all(len(e.body) == UNVERIFIED_BODY_LIMIT and not e.signature_valid for e in WebhookEvent.objects.all())
    assert not Message.objects.exists()


def test_a_malformed_body_is_400_and_kept_whole_for_inspection(channel):
    body = b'{"object": "whatsapp_business_account", "entry": [' + b" " * (UNVERIFIED_BODY_LIMIT * 2)

    receipt = receive(None, raw=body)

    assert receipt.status == 400
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.MALFORMED and event.signature_valid
    assert event.detail.startswith("Malformed body: not JSON")
    assert event.body == body.decode()  # verified: nothing of it is lost
    assert not Message.objects.exists()


def test_a_delivery_for_an_object_other_than_whatsapp_is_acknowledged_and_ignored(channel):
    receipt = receive({"object": "page", "entry": [{"id": "1", "changes": []}]})

    assert receipt.status == 200
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.IGNORED and event.detail == "nothing to act on: object 'page' is not handled"


def test_statuses_commit_with_their_event(channel, meta_example):
    payload = meta_example("Text Message")
    value = payload["entry"][0]["changes"][0]["value"]
    del value["messages"], value["contacts"]
    value["statuses"] = [{"id": "wamid.out-unknown", "status": "delivered", "timestamp": "1750000010", "recipient_id": "1"}]

    receipt = receive(payload)

    assert receipt.status == 200
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.status_count, event.channel) == (Outcome.PROCESSED, 1, None)
    assert StatusUpdate.objects.get().wamid == "wamid.out-unknown"


def test_a_replay_stores_what_was_lost_and_queues_its_turn(channel, meta_example, redis_queue):
    first = receive(texts(meta_example, ("wamid.lost", "390000000001")))
    Message.objects.all().delete()
    redis_queue_before = len(redis_queue)

    replay = webhook_event_replay(event=WebhookEvent.objects.get(pk=first.event.pk))

    assert replay.status == 200 and replay.event.pk != first.event.pk
    message = Message.objects.get()
    assert replay.new_message_ids == [message.pk]
    assert len(redis_queue) == redis_queue_before + 1 and [message.pk] in redis_queue.task_args()
    assert WebhookEvent.objects.get(pk=replay.event.pk).outcome == Outcome.PROCESSED


def test_a_replay_inside_a_transaction_is_stored_in_it(channel, meta_example):
    first = receive(texts(meta_example, ("wamid.atomic", "390000000001")))
    Message.objects.all().delete()

    with pytest.raises(RuntimeError), transaction.atomic():
        webhook_event_replay(event=WebhookEvent.objects.get(pk=first.event.pk))
        assert Message.objects.count() == 1
        raise RuntimeError("the caller's transaction rolls back")

    assert not Message.objects.exists()
    assert WebhookEvent.objects.count() == 1


def test_an_event_whose_signature_was_not_valid_cannot_be_replayed(channel, meta_example):
    forged = receive(texts(meta_example, ("wamid.forged", "390000000001")), secret="forged")

    with pytest.raises(ValueError):
        webhook_event_replay(event=forged.event)
    assert not Message.objects.exists()


def test_a_number_on_a_provider_not_supported_yet_verifies_nothing(meta_example):
    ChannelFactory(provider=Provider.TWILIO)

    receipt = receive(texts(meta_example, ("wamid.twilio", "390000000001")))

    assert receipt.status == 403 and WebhookEvent.objects.get().outcome == Outcome.BAD_SIGNATURE
    assert not Message.objects.exists()


def test_a_provider_whose_verify_fails_is_an_error_not_a_refusal(channel, meta_example, monkeypatch):
    # An error answers 500, which Meta retries; a 403 would drop the delivery unnoticed.
    def broken(self, body, headers):
        raise RuntimeError("a bug in verify")

    monkeypatch.setattr(MetaWebhooks, "verify", broken)

    with pytest.raises(RuntimeError, match="a bug in verify"):
        receive(texts(meta_example, ("wamid.unverifiable", "390000000001")))
