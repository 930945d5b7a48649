"""Queueing tasks (`conversations.queueing`): after the commit, and on Redis by a short path that
sends exactly the message `apply_async` would send."""

import base64
import json

import pytest

from conversations import queueing
from conversations.tasks import inbound_handle

pytestmark = pytest.mark.broker

IDS = ("id", "root_id", "correlation_id", "delivery_tag", "reply_to")


def _comparable(raw: bytes) -> dict:
    message = json.loads(raw)
    for key in IDS:
        message["headers"].pop(key, None)
        message["properties"].pop(key, None)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_the_redis_short_path_queues_the_same_message_as_apply_async(redis_queue, settings):
    import redis

    connection = redis.Redis.from_url(settings.REDIS_URL)
    assert queueing._redis_publisher(inbound_handle) is not None

    assert queueing.enqueue(inbound_handle, [41, 42]) == 2
    short = [json.loads(raw) for raw in connection.lrange("celery", 0, -1)]
    connection.delete("celery")
    queueing._apply_async_batch(inbound_handle, [41, 42])
    reference = connection.lrange("celery", 0, -1)

    assert [m["headers"]["argsrepr"] for m in short] == ["(42,)", "(41,)"]  # LPUSH: newest first
    assert all(m["headers"]["id"] == m["headers"]["root_id"] == m["properties"]["correlation_id"] for m in short)
    assert len({m["properties"]["delivery_tag"] for m in short}) == 2
    assert [_comparable(json.dumps(m)) for m in short] == [_comparable(raw) for raw in reference]


def test_options_such_as_a_countdown_take_apply_async(redis_queue, settings):
    import redis

    assert queueing.enqueue(inbound_handle, [7], countdown=30) == 1
    [raw] = redis.Redis.from_url(settings.REDIS_URL).lrange("celery", 0, -1)
    assert json.loads(raw)["headers"]["eta"] is not None


def test_a_broker_that_is_down_queues_nothing_and_raises_nothing(broker_down):
    assert queueing.enqueue(inbound_handle, [1, 2, 3]) == 0


@pytest.mark.django_db(transaction=True)
def test_tasks_queued_on_commit_go_out_only_when_the_transaction_commits(redis_queue):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        queueing.enqueue_on_commit(inbound_handle, [1, 2])
        raise RuntimeError("rolled back")
    assert len(redis_queue) == 0

    with transaction.atomic():
        queueing.enqueue_on_commit(queueing.INBOUND_HANDLE, [3, 4])  # by name, as ingest queues it
        assert len(redis_queue) == 0
    assert sorted(args[0] for args in redis_queue.task_args()) == [3, 4]


def test_a_publish_signal_receiver_makes_the_short_path_step_aside(redis_queue):
    from celery import signals

    def seen(**kwargs):
        published.append(kwargs["headers"]["argsrepr"])

    published: list[str] = []
    signals.before_task_publish.connect(seen)
    try:
        assert queueing._redis_publisher(inbound_handle) is None
        assert queueing.enqueue(inbound_handle, [9]) == 1
    finally:
        signals.before_task_publish.disconnect(seen)
    assert published == ["(9,)"] and redis_queue.task_args() == [[9]]


def test_nothing_to_queue_queues_nothing(redis_queue):
    assert queueing.enqueue(inbound_handle, []) == 0
    assert len(redis_queue) == 0
