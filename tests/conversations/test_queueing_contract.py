"""The Redis short path (`conversations.queueing.RedisShortPath`) against the pinned Celery and kombu.

The short path writes Celery's task messages into kombu's Redis lists itself, so nothing
but these tests tells when an upgrade of either changes what it must write: the message is
the one `apply_async` pushes, byte for byte but its ids, to the same list; and a Celery
worker runs it.
"""

import json
import re

import pytest
from celery import signals

from conversations import runtime
from conversations.queueing import INBOUND_HANDLE, RedisShortPath
from conversations.tasks import agent_reply, inbound_handle, message_deliver
from tests.workers import until

pytestmark = pytest.mark.broker

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pushed(connection, publish) -> dict[bytes, list[bytes]]:
    """The lists `publish()` created in Redis, oldest entry first ("celery" is empty before)."""
    before = set(connection.keys())
    publish()
    new = set(connection.keys()) - before
    assert all(connection.type(key) == b"list" for key in new)
    lists = {key: connection.lrange(key, 0, -1)[::-1] for key in new}
    for key in new:
        connection.delete(key)
    return lists


def without_ids(raw: bytes) -> bytes:
    """The raw message with its per-task ids (task id, root id, correlation id, delivery tag) blanked."""
    message = json.loads(raw)
    task_id = message["headers"]["id"]
    assert message["headers"]["root_id"] == task_id == message["properties"]["correlation_id"]
    assert UUID.fullmatch(task_id.encode()) and UUID.fullmatch(message["properties"]["delivery_tag"].encode())
    return raw.replace(task_id.encode(), b"<id>").replace(message["properties"]["delivery_tag"].encode(), b"<tag>")


@pytest.mark.parametrize("task", [inbound_handle, message_deliver, agent_reply], ids=lambda task: task.name)
def test_the_short_path_pushes_the_message_apply_async_pushes(task, redis_queue):
    short_path = RedisShortPath.for_task(task)
    assert short_path is not None
    ids = [41, 42, 2**40]

    short = pushed(redis_queue.client, lambda: short_path.publish(task, ids))
    reference = pushed(redis_queue.client, lambda: [task.apply_async((pk,), retry=False) for pk in ids])

    assert list(reference) == [b"celery"]  # kombu's list for the default queue at priority 0
    assert short.keys() == reference.keys()
    assert [without_ids(raw) for raw in short[b"celery"]] == [without_ids(raw) for raw in reference[b"celery"]]
    assert [json.loads(raw)["headers"]["argsrepr"] for raw in short[b"celery"]] == ["(41,)", "(42,)", f"({2**40},)"]
    all_ids = [json.loads(raw)["headers"]["id"] for raw in short[b"celery"]]
    all_ids += [json.loads(raw)["properties"]["delivery_tag"] for raw in short[b"celery"]]
    assert len(set(all_ids)) == 6


def test_a_batch_longer_than_a_pipeline_flush_arrives_whole_and_in_order(redis_queue):
    ids = list(range(1, 452))  # over two flushes of PUBLISH_BATCH_SIZE, and a remainder

    short = pushed(redis_queue.client, lambda: RedisShortPath.for_task(inbound_handle).publish(inbound_handle, ids))

    assert [json.loads(raw)["headers"]["argsrepr"] for raw in short[b"celery"]] == [f"({pk},)" for pk in ids]


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_runs_a_task_the_short_path_queued(redis_queue):
    from celery.contrib.testing.worker import start_worker

    from whatsbot.celery import app

    ran = []

    def record(sender=None, task_id=None, args=None, retval=None, **kwargs):
        ran.append((sender.name, task_id, list(args), retval))

    RedisShortPath.for_task(inbound_handle).publish(inbound_handle, [987654321])  # no such message
    [queued] = [json.loads(raw)["headers"]["id"] for raw in redis_queue.client.lrange("celery", 0, -1)]
    signals.task_postrun.connect(record, weak=False)
    try:
        # The project's own pool (CELERY_WORKER_POOL), as `celery worker` runs it.
        with start_worker(app, pool=app.conf.worker_pool, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
            until(lambda: ran, 15, every=0.05)
    finally:
        signals.task_postrun.disconnect(record)
        runtime.shutdown(10)  # the turn it handed over, and the loop's connections

    # The task hands the id to the worker's event loop (where the turn finds no such message).
    assert ran == [(INBOUND_HANDLE, queued, [987654321], "submitted")]
    assert redis_queue.client.llen("celery") == 0
