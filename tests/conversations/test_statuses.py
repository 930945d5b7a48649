"""Delivery statuses (`conversations.sql.status`), many per POST, through the webhook: the
set-based apply follows the one-by-one rules; what arrives before its message is applied by
the send that stores the wamid, or by the sweeper."""

from __future__ import annotations

import random
from datetime import datetime, timezone as dt_timezone

import pytest

from conversations.models import STATUS_RANK, Conversation, Message, MessageStatus, StatusUpdate
from conversations.queueing import STATUS_SWEEP
from conversations.services.sweeps import statuses_sweep
from conversations.sql import pipelined_transaction
from conversations.sql.status import statuses_store
from integrations.base import Identity, StatusEvent
from tests.conversations.conftest import MESSAGES_PATH
from tests.conversations.factories import PHONE_NUMBER_ID, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

PHONE = PHONE_NUMBER_ID


# The tests' times are seconds after this one (a time Meta can have stamped: not before WhatsApp).
EPOCH = 1750000000


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(EPOCH + ts, tz=dt_timezone.utc)


def _status(wamid: str, status: str, ts: int, errors: list | None = None) -> dict:
    """A status as Meta puts it in a webhook."""
    raw = {"id": wamid, "status": status, "timestamp": str(EPOCH + ts), "recipient_id": "393331234567"}
    if errors:
        raw["errors"] = errors
    return raw


@pytest.fixture
def statuses_apply(post_webhook):
    """POST these statuses to the webhook in one delivery, as Meta batches them."""

    def post(*, statuses: list[dict]) -> None:
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
                "statuses": statuses,
            }}]}],
        }  # fmt: skip
        assert post_webhook(payload).status_code == 200

    return post


def _expected(start_rank: int, posts: list[list[tuple[str, int]]]) -> dict:
    """The rules, one status at a time: POST after POST and, within a POST, in (timestamp,
    arrival) order, a status moves the message only past the rank reached so far, and
    stamps its own `<status>_at`."""
    rank, state = start_rank, {"status": None, "at": {}}
    for post in posts:
        for status, ts in sorted(post, key=lambda s: s[1]):  # sorted() is stable: arrival breaks ties
            if STATUS_RANK[status] > rank:
                rank = STATUS_RANK[status]
                state["status"] = status
                state["at"][status] = ts
    state["rank"] = rank
    return state


@pytest.fixture
def conversation(channel):
    return ConversationFactory(channel=channel)


def _outbound(conversation, wamid: str) -> Message:
    return MessageFactory(conversation=conversation, direction="out", author="bot", wamid=wamid, status=MessageStatus.SENT, status_rank=1)


def test_several_statuses_of_one_message_in_one_post_are_applied_in_timestamp_order(conversation, statuses_apply):
    message = _outbound(conversation, "wamid.a")
    before = Conversation.objects.get(pk=conversation.pk).revision
    statuses_apply(statuses=[_status("wamid.a", "read", 20), _status("wamid.a", "delivered", 10), _status("wamid.a", "sent", 5)])
    message.refresh_from_db()
    assert message.status == "read" and message.status_rank == 3
    assert message.delivered_at == _at(10) and message.read_at == _at(20)
    assert StatusUpdate.objects.filter(wamid="wamid.a", applied=True).count() == 3
    assert Conversation.objects.get(pk=conversation.pk).revision == before + 1


def test_a_late_status_in_the_same_post_does_not_move_the_message_back_or_stamp_its_time(conversation, statuses_apply):
    message = _outbound(conversation, "wamid.b")
    statuses_apply(statuses=[_status("wamid.b", "read", 20), _status("wamid.b", "delivered", 30)])
    message.refresh_from_db()
    assert message.status == "read" and message.delivered_at is None and message.read_at == _at(20)


def test_one_post_for_many_messages_moves_each_keeps_unknown_wamids_for_later_and_records_errors(conversation, channel, statuses_apply):
    a, b = _outbound(conversation, "wamid.m1"), _outbound(ConversationFactory(channel=channel), "wamid.m2")
    errors = [{"code": 131047, "title": "Re-engagement message", "message": "More than 24 hours", "error_data": {"details": "Outside the window."}}]
    statuses_apply(
        statuses=[
            _status("wamid.m1", "delivered", 10),
            _status("wamid.m2", "failed", 11, errors),
            _status("wamid.not-yet", "delivered", 12),
            _status("wamid.m1", "sent", 9),
        ]
    )
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == "delivered" and a.delivered_at == _at(10)
    assert (b.status, b.failed_at, b.error_code, b.error_title, b.error_detail) == (
        "failed", _at(11), "131047", "Re-engagement message", "Outside the window."
    )  # fmt: skip
    pending = StatusUpdate.objects.get(wamid="wamid.not-yet")
    assert not pending.applied  # applied once a send stores this wamid (test_a_status_that_came_before_the_send...)


def test_a_failed_status_without_error_details_clears_nothing_it_should_not(conversation, statuses_apply):
    message = _outbound(conversation, "wamid.f")
    statuses_apply(statuses=[_status("wamid.f", "failed", 30)])
    message.refresh_from_db()
    assert message.status == "failed" and (message.error_code, message.error_title, message.error_detail) == ("", "", "")


def test_an_unknown_status_is_stored_as_failed_as_before(conversation, statuses_apply):
    message = _outbound(conversation, "wamid.u")
    statuses_apply(statuses=[_status("wamid.u", "deleted", 30)])
    message.refresh_from_db()
    assert StatusUpdate.objects.get(wamid="wamid.u").status == "failed"
    assert message.status == "failed"


@pytest.mark.parametrize("seed", range(25))
def test_random_sequences_split_over_posts_end_as_the_rules_say(conversation, seed, statuses_apply):
    rng = random.Random(seed)
    choices = ["sent", "delivered", "read", "played", "failed", "delivered", "read"]
    wamids = [f"wamid.r{seed}-{n}" for n in range(3)]
    start = {w: rng.choice([0, 1]) for w in wamids}
    messages = {}
    for w in wamids:
        messages[w] = MessageFactory(
            conversation=conversation, direction="out", author="bot", wamid=w,
            status=MessageStatus.SENT if start[w] else MessageStatus.PENDING, status_rank=start[w],
        )  # fmt: skip
    sent: dict[str, list[list[tuple[str, int]]]] = {w: [] for w in wamids}
    posts = []
    for _ in range(rng.randint(1, 4)):
        post = []
        for w in wamids:
            sent[w].append([])
        for _ in range(rng.randint(1, 5)):
            w, status, ts = rng.choice(wamids), rng.choice(choices), rng.randint(1, 40)
            post.append(_status(w, status, ts))
            sent[w][-1].append((status, ts))
        posts.append(post)
    for post in posts:
        statuses_apply(statuses=post)
    for w in wamids:
        expected = _expected(start[w], sent[w])
        message = Message.objects.get(pk=messages[w].pk)
        assert message.status_rank == expected["rank"], (seed, w, sent[w])
        if expected["status"]:
            assert message.status == expected["status"]
        for status in ("sent", "delivered", "read", "played", "failed"):
            stamped = getattr(message, f"{status}_at")
            assert stamped == (_at(expected["at"][status]) if status in expected["at"] else None), (seed, w, status, sent[w])
    assert not StatusUpdate.objects.filter(wamid__in=wamids, applied=False).exists()


def test_the_sweeper_applies_statuses_the_send_missed_and_leaves_others_alone(conversation, settings):
    from django.utils import timezone

    settings.INBOUND_SWEEP_AFTER_SECONDS = 60
    now = timezone.now()

    def stored(wamid: str, status: str, ts: int, age: timezone.timedelta) -> StatusUpdate:
        row = StatusUpdate.objects.create(wamid=wamid, status=status, timestamp=_at(ts))
        StatusUpdate.objects.filter(pk=row.pk).update(created_at=now - age)
        return row

    # Stored while the send was committing its wamid: neither side applied it.
    missed = [stored("wamid.raced", "delivered", 10, timezone.timedelta(minutes=2)),
              stored("wamid.raced", "read", 20, timezone.timedelta(minutes=2))]  # fmt: skip
    raced = _outbound(conversation, "wamid.raced")
    too_new = stored("wamid.just-now", "delivered", 10, timezone.timedelta(seconds=5))
    _outbound(conversation, "wamid.just-now")  # its send applies it itself
    foreign = stored("wamid.not-ours", "delivered", 10, timezone.timedelta(minutes=2))  # sent by another app

    assert statuses_sweep() == 1
    raced.refresh_from_db()
    assert raced.status == "read" and raced.delivered_at == _at(10) and raced.read_at == _at(20)
    assert all(StatusUpdate.objects.get(pk=row.pk).applied for row in missed)
    assert not StatusUpdate.objects.get(pk=too_new.pk).applied
    assert not StatusUpdate.objects.get(pk=foreign.pk).applied
    assert statuses_sweep() == 0  # nothing left for it


def test_the_status_sweeper_is_on_the_beat_schedule():
    from whatsbot.celery import app

    assert {"task": STATUS_SWEEP, "schedule": 30.0} in app.conf.beat_schedule.values()


def test_the_apply_counts_the_messages_it_moved(conversation):
    _outbound(conversation, "wamid.c1")
    _outbound(conversation, "wamid.c2")
    statuses = [
        StatusEvent(PHONE, wamid, status, _at(ts), Identity(phone="393331234567"), [], {})
        for wamid, status, ts in [("wamid.c1", "delivered", 10), ("wamid.c1", "read", 11), ("wamid.c2", "sent", 12), ("wamid.nope", "read", 13)]
    ]

    with pipelined_transaction() as cursor:
        statuses_store(cursor, statuses)
    assert cursor.fetchone() == (1,)  # c1 moved; c2 was "sent" already; nope is not stored


def test_the_sweeper_leaves_statuses_older_than_a_day_alone(conversation, settings):
    from django.utils import timezone

    settings.INBOUND_SWEEP_AFTER_SECONDS = 60
    row = StatusUpdate.objects.create(wamid="wamid.ancient", status="read", timestamp=_at(10))
    StatusUpdate.objects.filter(pk=row.pk).update(created_at=timezone.now() - timezone.timedelta(days=2))
    message = _outbound(conversation, "wamid.ancient")

    assert statuses_sweep() == 0
    message.refresh_from_db()
    assert message.status == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_status_that_came_before_the_send_stored_its_wamid_is_applied_by_the_send(channel, statuses_apply, graph_api):
    """Meta can report a message delivered before the send's answer is written down."""
    from tests.conversations.conftest import deliver

    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json({"messages": [{"id": "wamid.early"}]})
    statuses_apply(statuses=[_status("wamid.early", "delivered", 12), _status("wamid.early", "read", 14)])
    conversation = ConversationFactory(channel=channel)
    pending = MessageFactory(conversation=conversation, direction="out", author="staff", wamid=None, status=MessageStatus.PENDING)
    revision = Conversation.objects.get(pk=conversation.pk).revision

    assert deliver(pending.pk) == "sent"

    pending.refresh_from_db()
    assert (pending.wamid, pending.status, pending.delivered_at, pending.read_at) == ("wamid.early", "read", _at(12), _at(14))
    assert not StatusUpdate.objects.filter(wamid="wamid.early", applied=False).exists()
    assert Conversation.objects.get(pk=conversation.pk).revision > revision
