"""`enqueue`: which tasks take the Redis short path and which take `apply_async`, and a broker that is down.

That the short path's messages are `apply_async`'s: test_queueing_contract.py.
"""

import json

import pytest
from celery import signals

from conversations.queueing import INBOUND_HANDLE, RedisShortPath, enqueue
from conversations.tasks import inbound_handle

pytestmark = pytest.mark.broker


def test_a_task_without_options_takes_the_short_path_and_queues_one_message_per_id(redis_queue):
    assert RedisShortPath.for_task(inbound_handle) is not None

    assert enqueue(inbound_handle, [41, 42]) == 2

    assert redis_queue.task_args() == [[42], [41]]  # LPUSH: newest first


def test_options_such_as_a_countdown_take_apply_async(redis_queue):
    assert enqueue(inbound_handle, [7], countdown=30) == 1
    [raw] = redis_queue.client.lrange("celery", 0, -1)
    assert json.loads(raw)["headers"]["eta"] is not None


def test_publish_signals_connected_take_apply_async_which_sends_them(redis_queue):
    sent = []

    def record(sender=None, body=None, **kwargs):
        sent.append((sender, list(body[0])))

    signals.before_task_publish.connect(record, weak=False)
    try:
        assert RedisShortPath.for_task(inbound_handle) is None
        assert enqueue(inbound_handle, [5, 6]) == 2
    finally:
        signals.before_task_publish.disconnect(record)

    assert sent == [(INBOUND_HANDLE, [5]), (INBOUND_HANDLE, [6])]
    assert len(redis_queue) == 2


def test_a_task_with_its_own_queue_takes_apply_async(redis_queue):
    from whatsbot.celery import app

    def elsewhere(pk):
        pass

    routed = app.task(name="tests.queueing.routed", queue="tests.queueing.elsewhere", ignore_result=True)(elsewhere)
    try:
        assert RedisShortPath.for_task(routed) is None

        assert enqueue(routed, [3]) == 1

        [raw] = redis_queue.client.lrange("tests.queueing.elsewhere", 0, -1)
        assert json.loads(raw)["headers"]["task"] == "tests.queueing.routed"
    finally:
        redis_queue.client.delete("tests.queueing.elsewhere")
        app.tasks.unregister("tests.queueing.routed")


def test_a_broker_that_is_down_queues_nothing_and_raises_nothing(broker_down):
    assert enqueue(inbound_handle, [1, 2, 3]) == 0


def test_nothing_to_queue_queues_nothing(redis_queue):
    assert enqueue(inbound_handle, []) == 0
    assert len(redis_queue) == 0


@pytest.mark.django_db(transaction=True)
def test_tasks_queued_on_commit_go_out_only_when_the_transaction_commits(redis_queue):
    from django.db import transaction

    from conversations import queueing

    with pytest.raises(RuntimeError), transaction.atomic():
        queueing.enqueue_on_commit(inbound_handle, [1, 2])
        raise RuntimeError("rolled back")
    assert len(redis_queue) == 0

    with transaction.atomic():
        queueing.enqueue_on_commit(queueing.INBOUND_HANDLE, [3, 4])  # by name, as ingest queues it
        assert len(redis_queue) == 0
    assert sorted(args[0] for args in redis_queue.task_args()) == [3, 4]
