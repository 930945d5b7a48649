"""Queue Celery tasks after the transaction that stored their rows has committed.

If the broker is unreachable the rows are already safe in the database: the failure is
logged and the beat sweeper queues them later. One broker failure stops the rest of the
batch from trying (and each waiting out the connection timeout).

With a Redis broker, the webhook's tasks take a short path (`_RedisPublisher`): Celery's own
protocol-2 message is built once per task type, copied per row with its new task id and
arguments, and the batch is LPUSHed in one redis-py pipeline. `apply_async` costs about a
millisecond of CPU per task on this kind of machine (argument repr, configuration look-ups,
routing, kombu's envelope), which was the largest single cost of a webhook POST. The
message is the one `apply_async` would send, so any Celery worker consumes it unchanged.
Every other case (other brokers, options such as `countdown`, publish signals connected,
calls from inside a running task) takes `apply_async`.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable
from uuid import uuid4

from celery import Task, current_app, signals
from celery._state import get_current_worker_task
from django.db import transaction
from kombu.entity import maybe_delivery_mode
from kombu.utils.json import dumps as kombu_dumps

logger = logging.getLogger(__name__)

# The tasks, by name: code below the tasks module queues them without importing it (the
# tasks call that code). `conversations.tasks` registers each under its name.
INBOUND_HANDLE = "conversations.tasks.inbound_handle"
AGENT_REPLY = "conversations.tasks.agent_reply"
MESSAGE_DELIVER = "conversations.tasks.message_deliver"
INBOUND_SWEEP = "conversations.tasks.inbound_sweep"
OUTBOUND_SWEEP = "conversations.tasks.outbound_sweep"
STATUS_SWEEP = "conversations.tasks.status_sweep"


def _task(task: Task | str) -> Task:
    if not isinstance(task, str):
        return task
    if task not in current_app.tasks:
        # Celery's autodiscovery of the tasks modules, which a worker runs at start (a web
        # process, at its first queueing).
        current_app.loader.import_default_modules()
    return current_app.tasks[task]

# Redis commands buffered before a flush: a 1,000-message Meta batch goes in a few round trips.
PUBLISH_BATCH_SIZE = 200


def enqueue(task: Task | str, ids: Iterable[int], **options) -> int:
    ids = list(ids)
    if not ids:
        return 0
    task = _task(task)
    publisher = None if options else _redis_publisher(task)
    try:
        if publisher is not None:
            return publisher.publish(task, ids)
        return _apply_async_batch(task, ids, **options)
    except Exception as exc:  # broker down: the rows are stored; the sweeper will queue them
        logger.warning("could not queue %s for %d row(s): %s", task.name, len(ids), exc)
        return 0


def _apply_async_batch(task: Task, ids: list[int], **options) -> int:
    queued = 0
    with task.app.producer_or_acquire() as producer:
        # kombu buffers the batch's LPUSHes and sends them in one Redis round trip on exit
        # (transports without batching publish one by one). Still one task per row.
        with producer.batch(max_size=PUBLISH_BATCH_SIZE):
            for pk in ids:
                task.apply_async((pk,), producer=producer, retry=False, **options)
                queued += 1
    return queued


def enqueue_on_commit(task: Task | str, ids: Iterable[int], **options) -> None:
    ids = list(ids)
    if ids:
        transaction.on_commit(lambda: enqueue(task, ids, **options))


# --- the short path for Redis ---------------------------------------------------------------

_publishers: dict[str, _RedisPublisher | bool] = {}
_publishers_lock = threading.Lock()


def _redis_publisher(task: Task) -> _RedisPublisher | None:
    """The Redis publisher for the app's broker, or None when `apply_async` must be used."""
    conf = task.app.conf
    url = conf.broker_url or ""
    publisher = _publishers.get(url)
    if publisher is None:
        with _publishers_lock:
            publisher = _publishers.get(url)
            if publisher is None:
                publisher = _publishers[url] = _RedisPublisher(task.app, url) if _redis_short_path_fits(conf, url) else False
    if publisher is False or conf.task_always_eager:
        return None
    if signals.before_task_publish.receivers or signals.after_task_publish.receivers or signals.task_sent.receivers:
        return None
    if get_current_worker_task() is not None:
        return None  # inside a task: Celery records the parent and root ids
    return publisher


def _redis_short_path_fits(conf, url: str) -> bool:
    # Read once per broker URL: Celery's configuration look-ups are not cheap.
    return (
        url.startswith("redis://")
        and conf.task_serializer == "json"
        and not conf.task_compression
        and conf.task_protocol == 2
        and not (conf.broker_transport_options or {}).get("global_keyprefix")
    )


class _RedisPublisher:
    """LPUSH Celery protocol-2 messages straight into kombu's Redis queue lists."""

    def __init__(self, app, url: str) -> None:
        import redis

        self.app = app
        timeout = app.conf.broker_connection_timeout
        self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=max(timeout or 0, 5.0))
        # Per task name: (headers, queue, properties), or None when the task's routing or
        # options need `apply_async`.
        self._templates: dict[str, tuple[dict, str, dict] | None] = {}

    def _template(self, task: Task) -> tuple[dict, str, dict] | None:
        if task.name not in self._templates:
            try:
                self._templates[task.name] = self._template_build(task)
            except _Unsupported as exc:
                logger.info("queueing %s through apply_async: %s", task.name, exc)
                self._templates[task.name] = None
        return self._templates[task.name]

    def _template_build(self, task: Task) -> tuple[dict, str, dict]:
        """Headers, queue and properties of `task`'s messages, from Celery's own machinery."""
        app = self.app
        options = app.amqp.router.route(dict(task._get_exec_options()), task.name, (0,), {}, task)
        queue = options.get("queue")
        exchange = options.get("exchange")
        if queue is None or getattr(queue.exchange, "type", "direct") != "direct" or (exchange and exchange != ""):
            raise _Unsupported(f"route of {task.name}")
        if options.get("priority") or queue.queue_arguments or queue.max_priority:
            raise _Unsupported(f"priority queue for {task.name}")
        message = app.amqp.as_task_v2(
            "00000000-0000-0000-0000-000000000000",
            task.name,
            (0,),
            {},
            ignore_result=task.ignore_result,
            time_limit=task.time_limit,
            soft_time_limit=task.soft_time_limit,
            expires=task.expires,
        )
        if message.headers["expires"] is not None:
            raise _Unsupported(f"expiring task {task.name}")  # the expiry is relative to each send
        delivery_mode = maybe_delivery_mode(queue.exchange.delivery_mode or app.conf.task_default_delivery_mode)
        properties = {
            "correlation_id": None,
            "reply_to": "",
            "delivery_mode": delivery_mode,
            "delivery_info": {"exchange": "", "routing_key": queue.name},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": None,
        }
        # Declare the queue once as kombu would (its binding keys in Redis), then never again.
        with app.producer_or_acquire() as producer:
            producer.maybe_declare(queue, retry=False)
        return message.headers, queue.name, properties

    def publish(self, task: Task, ids: list[int]) -> int:
        template = self._template(task)
        if template is None:
            return _apply_async_batch(task, ids)
        headers, queue, properties = template
        reply_to = self.app.thread_oid
        with self.client.pipeline(transaction=False) as pipe:
            for n, pk in enumerate(ids, 1):
                task_id = str(uuid4())
                message_headers = {**headers, "id": task_id, "root_id": task_id, "argsrepr": f"({pk!r},)"}
                body = kombu_dumps([[pk], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
                message = {
                    "body": base64.b64encode(body.encode()).decode(),
                    "content-encoding": "utf-8",
                    "content-type": "application/json",
                    "headers": message_headers,
                    "properties": {
                        **properties,
                        "correlation_id": task_id,
                        "reply_to": reply_to,
                        "delivery_info": dict(properties["delivery_info"]),
                        "delivery_tag": str(uuid4()),
                    },
                }
                pipe.lpush(queue, kombu_dumps(message))
                if n % PUBLISH_BATCH_SIZE == 0:
                    pipe.execute()
            pipe.execute()
        return len(ids)


class _Unsupported(Exception):
    pass
