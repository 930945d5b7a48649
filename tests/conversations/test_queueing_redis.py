"""The short Redis publish path sends exactly the message `apply_async` would send."""

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
