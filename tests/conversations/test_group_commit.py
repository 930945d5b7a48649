"""Group commit: concurrent webhook POSTs of one web process share one transaction."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, connections

from conversations.models import Message
from webhooks import services
from webhooks.groupcommit import GroupCommit
from webhooks.meta import sign
from webhooks.models import WebhookEvent

from tests.conversations.factories import APP_SECRET, ConversationFactory, MessageFactory


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


class _Gate:
    """A store that holds its first batch until `waiting` more jobs have queued up."""

    def __init__(self, store, waiting: int) -> None:
        self.store, self.waiting, self.batches = store, waiting, []
        self.group: GroupCommit | None = None

    def __call__(self, jobs):
        if not self.batches:
            _wait_for(lambda: self.group.pending() >= self.waiting)
        self.batches.append(list(jobs))
        return self.store(jobs)


def _run_all(group: GroupCommit, jobs: list) -> dict:
    outcomes: dict = {}

    def one(job):
        try:
            outcomes[job] = group.run(job)
        except Exception as exc:
            outcomes[job] = exc

    threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
    threads[0].start()
    _wait_for(lambda: group._busy)  # the first one leads
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(10)
    return outcomes


def test_requests_arriving_while_one_stores_are_stored_together_and_each_gets_its_own_result():
    gate = _Gate(lambda jobs: [job * 10 for job in jobs], waiting=4)
    gate.group = group = GroupCommit(gate)
    outcomes = _run_all(group, [1, 2, 3, 4, 5])
    assert outcomes == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
    assert [len(b) for b in gate.batches] == [1, 4]
    assert gate.batches[0] == [1]
    assert not group._busy and group.pending() == 0


def test_a_lone_request_is_a_batch_of_one():
    seen = []
    group = GroupCommit(lambda jobs: seen.append(list(jobs)) or ["ok"] * len(jobs))
    assert group.run("a") == "ok"
    assert group.run("b") == "ok"
    assert seen == [["a"], ["b"]]


def test_a_batch_that_fails_is_stored_job_by_job_and_only_the_bad_job_fails():
    def store(jobs):
        if "bad" in jobs:
            raise ValueError("bad job")
        return [f"stored {job}" for job in jobs]

    gate = _Gate(store, waiting=3)
    gate.group = group = GroupCommit(gate)
    outcomes = _run_all(group, ["first", "x", "bad", "y"])
    assert outcomes["first"] == "stored first"
    assert outcomes["x"] == "stored x" and outcomes["y"] == "stored y"
    assert isinstance(outcomes["bad"], ValueError)
    # The batch of three failed, then each of its jobs went alone.
    assert [len(b) for b in gate.batches] == [1, 3, 1, 1, 1]


def test_an_exception_in_a_job_s_place_is_raised_in_that_job_s_thread_only():
    gate = _Gate(lambda jobs: [KeyError(job) if job == "k" else job for job in jobs], waiting=2)
    gate.group = group = GroupCommit(gate)
    outcomes = _run_all(group, ["a", "k", "b"])
    assert outcomes["a"] == "a" and outcomes["b"] == "b"
    assert isinstance(outcomes["k"], KeyError)


def test_a_batch_is_capped_by_weight_and_the_rest_follows_in_the_next():
    gate = _Gate(lambda jobs: list(jobs), waiting=4)
    gate.group = group = GroupCommit(gate, weight=lambda job: job, max_weight=5)
    outcomes = _run_all(group, [1, 2, 2, 2, 9])
    assert outcomes == {1: 1, 2: 2, 9: 9}
    # After the leader's own batch: 2+2 fit in 5, then 2, then 9 alone (over the cap, but never split).
    assert [sum(b) for b in gate.batches] == [1, 4, 2, 9]


# --- the real webhook store on PostgreSQL -----------------------------------------------------


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


@pytest.mark.django_db(transaction=True)
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
    gate = _Gate(services._jobs_store, waiting=len(bodies) - 1)
    gate.group = GroupCommit(gate, weight=services._store_weight, max_weight=services.GROUP_COMMIT_MAX_MESSAGES)
    monkeypatch.setattr(services, "_group_commit", gate.group)
    receipts: dict[int, services.Receipt] = {}

    def post(n: int) -> None:
        try:
            receipts[n] = services.webhook_receive(body=bodies[n], signature=sign(bodies[n], APP_SECRET))
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
