"""`conversations.ingest.delivery_ingest`: a delivery's messages, statuses and record stored in
one transaction (shared by concurrent deliveries: the group commit), their turns queued after
the commit, a dead kept connection replaced once.

These run outside any test transaction: the web process's own path, with real COMMITs.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone as dt_timezone

import pytest
from django.db import OperationalError, connection, connections, transaction

from conversations import ingest
from conversations.groupcommit import GroupCommit
from conversations.ingest import delivery_ingest
from conversations.models import Conversation, ConversationStatus, Message, StatusUpdate
from integrations.base import Delivery, Identity, InboundMessage, StatusEvent
from integrations.meta import parser
from integrations.meta.signature import sign
from profiles.models import ClientProfile
from tests.conversations.test_group_commit import _Gate, _wait_for
from tests.conversations.factories import APP_SECRET, PHONE_NUMBER_ID, ChannelFactory, ConversationFactory, MessageFactory
from webhooks import services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=dt_timezone.utc)


def text(wamid: str, *, customer: str = "390000000001", body: str = "", ts: int = 1750000000, name: str = "",
         number: str = PHONE_NUMBER_ID) -> InboundMessage:  # fmt: skip
    return InboundMessage(
        phone_number_id=number, provider_id=wamid, customer=Identity(phone=customer), type="text", text=body or f"text {wamid}",
        timestamp=_at(ts), payload={"id": wamid}, profile_name=name,
    )  # fmt: skip


def status(wamid: str, value: str, ts: int, *, number: str = PHONE_NUMBER_ID) -> StatusEvent:
    return StatusEvent(number, wamid, value, _at(ts), Identity(phone="390000000001"), [], {"id": wamid, "status": value})


@pytest.fixture
def channels(channel) -> dict:
    return {channel.phone_number_id: channel}


# --- one delivery ------------------------------------------------------------------------------


def test_a_delivery_stores_its_messages_in_the_order_sent_and_queues_their_turns(channels, redis_queue):
    ingested = delivery_ingest(delivery=Delivery(messages=[text("wamid.b", ts=20), text("wamid.a", ts=10)]), channels=channels)

    stored = list(Message.objects.order_by("pk").values_list("pk", "wamid"))
    assert [w for _, w in stored] == ["wamid.b", "wamid.a"]  # ids follow the provider's order
    assert ingested.new_message_ids == [pk for pk, _ in stored] and ingested.unknown == []
    assert sorted(args[0] for args in redis_queue.task_args()) == ingested.new_message_ids


def test_the_thread_moves_to_its_latest_message_and_reopens(channel, channels):
    conversation = ConversationFactory(
        channel=channel, profile__wa_id="390000000001", status=ConversationStatus.RESOLVED, unread_count=1,
        last_inbound_at=_at(5), last_message_at=_at(5),
    )  # fmt: skip
    before = Conversation.objects.get(pk=conversation.pk)

    delivery_ingest(delivery=Delivery(messages=[text("wamid.late", ts=30, body="ultimo"), text("wamid.early", ts=10)]), channels=channels)

    after = Conversation.objects.get(pk=conversation.pk)
    assert after.status == ConversationStatus.OPEN
    assert (after.unread_count, after.revision) == (3, before.revision + 1)
    assert after.last_inbound_at == after.last_message_at == _at(30) and after.last_message_preview == "ultimo"
    assert after.changed_at > before.changed_at


def test_a_profile_keeps_its_name_when_a_message_carries_none_and_its_latest_contact(channels):
    delivery_ingest(delivery=Delivery(messages=[text("wamid.1", ts=20, name="Giulia")]), channels=channels)
    delivery_ingest(delivery=Delivery(messages=[text("wamid.2", ts=10, name="")]), channels=channels)

    profile = ClientProfile.objects.get()
    assert profile.profile_name == "Giulia"
    assert (profile.first_contact_at, profile.last_contact_at) == (_at(20), _at(20))

    delivery_ingest(delivery=Delivery(messages=[text("wamid.3", ts=40, name="Giulia R.")]), channels=channels)
    profile.refresh_from_db()
    assert (profile.profile_name, profile.last_contact_at) == ("Giulia R.", _at(40))


def test_items_for_a_number_without_a_channel_are_dropped_and_named(channels, redis_queue):
    ingested = delivery_ingest(
        delivery=Delivery(messages=[text("wamid.stranger", number="555")], statuses=[status("wamid.x", "read", 1, number="555")]),
        channels=channels,
    )

    assert ingested.unknown == ["555"] and ingested.new_message_ids == []
    assert not Message.objects.exists() and not StatusUpdate.objects.exists() and len(redis_queue) == 0


def test_the_record_is_described_then_stored_with_the_rows(channel, channels):
    seen = []

    def describe(record, result):
        seen.append(list(result.new_message_ids))
        record.detail = f"{len(result.new_message_ids)} new"

    record = WebhookEvent(body="{}", signature_valid=True)
    ingested = delivery_ingest(delivery=Delivery(messages=[text("wamid.r")]), channels=channels, record=record, describe=describe)

    assert record.pk is not None and seen == [ingested.new_message_ids]
    assert WebhookEvent.objects.get(pk=record.pk).detail == "1 new"


def test_inside_a_callers_transaction_the_delivery_is_stored_in_it_and_queued_on_its_commit(channels, redis_queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        delivery_ingest(delivery=Delivery(messages=[text("wamid.t")]), channels=channels)
        assert Message.objects.count() == 1
        raise RuntimeError("the caller rolls back")

    assert not Message.objects.exists() and len(redis_queue) == 0


def test_statuses_are_stored_and_applied_with_the_messages(channel, channels):
    sent = MessageFactory(conversation=ConversationFactory(channel=channel), direction="out", author="bot", wamid="wamid.sent",
                          status="sent", status_rank=1)  # fmt: skip

    delivery_ingest(delivery=Delivery(messages=[text("wamid.in")], statuses=[status("wamid.sent", "delivered", 5)]), channels=channels)

    sent.refresh_from_db()
    assert sent.status == "delivered" and sent.delivered_at == _at(5)
    assert StatusUpdate.objects.get().applied


# --- a dead kept connection ----------------------------------------------------------------------


def _message(meta_example, wamid: str) -> dict:
    body = meta_example("Text Message")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = wamid
    return body


def _terminate(pid: int) -> None:
    import psycopg

    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], password=settings["PASSWORD"],
        dbname=settings["NAME"], autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
def test_a_delivery_on_a_connection_the_server_closed_is_stored_on_a_new_one(channel, post_webhook, meta_example, caplog):
    if connection.vendor != "postgresql":
        pytest.skip("the pipelined hot path is PostgreSQL's")
    assert post_webhook(_message(meta_example, "wamid.before")).status_code == 200
    old_pid = connection.connection.info.backend_pid

    _terminate(old_pid)

    assert post_webhook(_message(meta_example, "wamid.after")).status_code == 200
    assert connection.connection.info.backend_pid != old_pid
    assert "database connection lost; reconnecting" in caplog.text
    assert set(Message.objects.values_list("wamid", flat=True)) == {"wamid.before", "wamid.after"}
    assert WebhookEvent.objects.filter(outcome="processed").count() == 2


def test_a_connection_lost_inside_a_callers_transaction_is_not_reconnected(channels):
    connection.ensure_connection()
    with pytest.raises(OperationalError), transaction.atomic():
        _terminate(connection.connection.info.backend_pid)
        # A reconnection here would store the delivery outside the caller's transaction.
        delivery_ingest(delivery=Delivery(messages=[text("wamid.lost")]), channels=channels)
    connection.close()
    assert not Message.objects.exists()


# --- the group commit on PostgreSQL ----------------------------------------------------------


def _gated(monkeypatch, *, waiting: int) -> "_Gate":
    """Ingest's group commit, holding its first batch until `waiting` more deliveries queued."""
    gate = _Gate(ingest._store, waiting=waiting)
    gate.group = GroupCommit(gate, weight=ingest._weight, max_weight=ingest.GROUP_COMMIT_MAX_ITEMS)
    monkeypatch.setattr(ingest, "_group_commit", gate.group)
    return gate


def _post_concurrently(gate, bodies: list[bytes]) -> dict[int, services.Receipt]:
    """Each body through the webhook's receiving function on a thread of its own (a web
    process's request threads), the first one leading."""
    receipts: dict[int, services.Receipt] = {}

    def post(n: int) -> None:
        try:
            receipts[n] = services.webhook_receive(body=bodies[n], headers={"X-Hub-Signature-256": sign(bodies[n], APP_SECRET)})
        finally:
            connections.close_all()

    first = threading.Thread(target=post, args=(0,))
    first.start()
    _wait_for(lambda: gate.group._busy)
    others = [threading.Thread(target=post, args=(n,)) for n in range(1, len(bodies))]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(10)
    return receipts


def _body(meta_example, wamid: str, wa_id: str) -> bytes:
    body = meta_example("Text Message")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][0]["id"] = wamid
    value["messages"][0]["from"] = wa_id
    value["contacts"][0]["wa_id"] = wa_id
    return json.dumps(body).encode()


def _statuses_body(meta_example, wamid: str) -> bytes:
    body = meta_example("Text Message")
    value = body["entry"][0]["changes"][0]["value"]
    del value["messages"], value["contacts"]
    value["statuses"] = [
        {"id": wamid, "status": "delivered", "timestamp": "1750000010", "recipient_id": "390000000009"},
        {"id": wamid, "status": "read", "timestamp": "1750000020", "recipient_id": "390000000009"},
    ]
    return json.dumps(body).encode()


def test_concurrent_posts_share_one_transaction_and_keep_their_own_events_and_tasks(channel, meta_example, monkeypatch, redis_queue):
    if connection.vendor != "postgresql":
        pytest.skip("the group commit is the PostgreSQL hot path's")
    outbound = MessageFactory(
        conversation=ConversationFactory(channel=channel), direction="out", author="bot", wamid="wamid.out-g",
        status="sent", status_rank=1,
    )  # fmt: skip
    bodies = [
        _body(meta_example, "wamid.g1", "390000000001"),
        _body(meta_example, "wamid.g2", "390000000002"),
        _body(meta_example, "wamid.g3", "390000000001"),  # the same customer as g1
        _body(meta_example, "wamid.g2", "390000000002"),  # Meta delivering g2 twice at once
        _body(meta_example, "wamid.g4", "390000000004"),
        _statuses_body(meta_example, "wamid.out-g"),  # delivery statuses share the transaction too
    ]
    gate = _gated(monkeypatch, waiting=len(bodies) - 1)
    receipts = _post_concurrently(gate, bodies)

    assert [len(b) for b in gate.batches] == [1, 5]
    assert all(r.status == 200 for r in receipts.values())
    outbound.refresh_from_db()
    assert outbound.status == "read" and outbound.delivered_at.timestamp() == 1750000010
    stored = dict(Message.objects.filter(direction="in").values_list("wamid", "id"))
    assert sorted(stored) == ["wamid.g1", "wamid.g2", "wamid.g3", "wamid.g4"]
    # Each POST learns its own new messages; the duplicate of g2 in the same batch is not new.
    new = {n: r.new_message_ids for n, r in receipts.items()}
    assert new[0] == [stored["wamid.g1"]] and new[2] == [stored["wamid.g3"]] and new[4] == [stored["wamid.g4"]]
    assert sorted([new[1], new[3]]) == [[], [stored["wamid.g2"]]]
    # One event row per POST, each with its own outcome, and the receipt knows its id.
    events = {e.pk: e for e in WebhookEvent.objects.all()}
    assert len(events) == len(bodies)
    assert {r.event.pk for r in receipts.values()} == set(events)
    for n, receipt in receipts.items():
        event = events[receipt.event.pk]
        assert event.body == bodies[n].decode()
        assert event.outcome == "processed"
        if n == 5:
            assert event.detail == "0 new message(s), 0 duplicate(s), 2 status(es)" and event.status_count == 2
            continue
        assert event.channel_id == channel.pk
        duplicates = 0 if receipt.new_message_ids else 1
        assert event.detail == f"{1 - duplicates} new message(s), {duplicates} duplicate(s), 0 status(es)"
    # One task per new message, none for the duplicate.
    assert sorted(arg for args in redis_queue.task_args() for arg in args) == sorted(stored.values())


def test_a_delivery_that_fails_in_a_shared_batch_fails_alone(channel, meta_example, monkeypatch, redis_queue, database_refuses):
    database_refuses(ClientProfile, "wa_id", "390000000003")
    bodies = [
        _body(meta_example, "wamid.h1", "390000000001"),
        _body(meta_example, "wamid.h2", "390000000002"),
        _body(meta_example, "wamid.h3", "390000000003"),  # the database refuses this customer
        _body(meta_example, "wamid.h4", "390000000004"),
    ]
    gate = _gated(monkeypatch, waiting=len(bodies) - 1)

    receipts = _post_concurrently(gate, bodies)

    # The batch of three failed as a whole, then each went alone.
    assert [len(b) for b in gate.batches] == [1, 3, 1, 1, 1]
    assert {n: r.status for n, r in receipts.items()} == {0: 200, 1: 200, 2: 500, 3: 200}
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.h1", "wamid.h2", "wamid.h4"]
    assert WebhookEvent.objects.get(pk=receipts[2].event.pk).outcome == "failed"
    assert sorted(arg for args in redis_queue.task_args() for arg in args) == sorted(Message.objects.values_list("pk", flat=True))


def test_a_delivery_stored_again_after_its_batch_failed_late_counts_only_its_stored_messages(
    channel, meta_example, monkeypatch, redis_queue, database_refuses
):
    # The database refuses the bad delivery's status: the batch fails only at the statuses'
    # statement, after the first round trip said which messages were new.
    database_refuses(StatusUpdate, "recipient_id", "399999999999")
    bad = json.loads(_statuses_body(meta_example, "wamid.out-late"))
    bad["entry"][0]["changes"][0]["value"]["statuses"][0]["recipient_id"] = "399999999999"
    bodies = [
        _body(meta_example, "wamid.l1", "390000000001"),
        _body(meta_example, "wamid.l2", "390000000002"),
        json.dumps(bad).encode(),
    ]
    gate = _gated(monkeypatch, waiting=len(bodies) - 1)

    receipts = _post_concurrently(gate, bodies)

    assert [len(b) for b in gate.batches] == [1, 2, 1, 1]  # the batch of two failed, then each went alone
    assert {n: r.status for n, r in receipts.items()} == {0: 200, 1: 200, 2: 500}
    stored = dict(Message.objects.values_list("wamid", "id"))
    assert sorted(stored) == ["wamid.l1", "wamid.l2"]
    assert receipts[1].new_message_ids == [stored["wamid.l2"]]
    event = WebhookEvent.objects.get(pk=receipts[1].event.pk)
    assert event.detail == "1 new message(s), 0 duplicate(s), 0 status(es)"
    assert sorted(arg for args in redis_queue.task_args() for arg in args) == sorted(stored.values())


def test_a_delivery_sends_no_health_check_before_its_transaction(channels, meta_example, monkeypatch):
    # A dead kept connection is found by the transaction's first round trip and replaced
    # (above): CONN_HEALTH_CHECKS' SELECT 1 would be one more round trip per POST.
    connection.ensure_connection()
    assert connection.health_check_enabled
    connection.health_check_done = False  # as request_started leaves it
    checks = []
    is_usable = connection.is_usable

    def counted() -> bool:
        checks.append(1)
        return is_usable()

    monkeypatch.setattr(connection, "is_usable", counted)
    delivery = parser.parse(json.dumps(_message(meta_example, "wamid.unchecked")).encode())

    ingested = delivery_ingest(delivery=delivery, channels=channels)

    assert checks == []
    assert ingested.new_message_ids == list(Message.objects.values_list("pk", flat=True))
