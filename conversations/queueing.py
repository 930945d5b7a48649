"""Queue Celery tasks after the transaction that stored their rows has committed.

If the broker is unreachable the rows are already safe in the database: the failure is
logged and the beat sweeper queues them later. One broker failure stops the rest of the
batch from trying (and each waiting out the connection timeout).

Tasks go through Celery's `apply_async`, a batch of them in one kombu publish batch (one
Redis round trip), except the ones `RedisShortPath` takes: tasks queued without options,
from outside a worker task, on a Redis broker — the webhook's, one per stored message.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar
from uuid import uuid4

import redis
from celery import Task, current_app, signals
from django.db import transaction
from kombu.entity import maybe_delivery_mode
from kombu.utils.json import dumps as kombu_dumps

logger = logging.getLogger(__name__)

# Redis commands buffered before a flush: a 1,000-message Meta batch goes in a few round trips.
PUBLISH_BATCH_SIZE = 200

# The tasks, by name: code below the tasks module queues them without importing it (the
# tasks call that code). `conversations.tasks` registers each under its name.
INBOUND_HANDLE = "conversations.tasks.inbound_handle"
AGENT_REPLY = "conversations.tasks.agent_reply"
MESSAGE_DELIVER = "conversations.tasks.message_deliver"
MEDIA_FETCH = "conversations.tasks.media_fetch"
INBOUND_SWEEP = "conversations.tasks.inbound_sweep"
OUTBOUND_SWEEP = "conversations.tasks.outbound_sweep"
STATUS_SWEEP = "conversations.tasks.status_sweep"
MEDIA_SWEEP = "conversations.tasks.media_sweep"
MEDIA_RETENTION = "conversations.tasks.media_retention"
MODEL_SHUTDOWNS_CHECK = "conversations.tasks.model_shutdowns_check"
TEMPLATES_SYNC = "conversations.tasks.templates_sync"
TEMPLATES_SYNC_ALL = "conversations.tasks.templates_sync_all"


def _task(task: Task | str) -> Task:
    if not isinstance(task, str):
        return task
    if task not in current_app.tasks:
        # Celery's autodiscovery of the tasks modules, which a worker runs at start (a web
        # process, at its first queueing).
        current_app.loader.import_default_modules()
    return current_app.tasks[task]


def enqueue(task: Task | str, ids: Iterable[int], **options) -> int:
    """Queue `task` (or the task of that name) once per id (its one argument); the number
    queued, 0 if the broker failed."""
    ids = list(ids)
    if not ids:
        return 0
    task = _task(task)
    try:
        short_path = None if options else RedisShortPath.for_task(task)
        if short_path is not None:
            return short_path.publish(task, ids)
        with task.app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_BATCH_SIZE):
            # Transports without batching publish one by one. Still one task per row.
            for pk in ids:
                task.apply_async((pk,), producer=producer, retry=False, **options)
        return len(ids)
    except Exception as exc:  # broker down: the rows are stored; the sweeper will queue them
        logger.warning("could not queue %s for %d row(s): %s", task.name, len(ids), exc)
        return 0


def enqueue_on_commit(task: Task | str, ids: Iterable[int], **options) -> None:
    ids = list(ids)
    if ids:
        transaction.on_commit(lambda: enqueue(task, ids, **options))


@dataclass(frozen=True)
class _Template:
    headers: dict
    queue: str
    properties: dict


class RedisShortPath:
    """Celery's task messages, LPUSHed with redis-py straight into kombu's Redis queue list.

    Why: `apply_async` spends most of its CPU per task on work that comes out the same for
    every task of a type (configuration look-ups, routing, the arguments' `saferepr`,
    kombu's envelope and declarations), and the webhook queues a task for every message
    it stores: publishing them through Celery was the largest single cost of a POST.
    Here Celery does that work once per task type (`app.amqp.router`,
    `app.amqp.create_task_message`) and each task is a copy with its own ids and argument,
    the batch in one redis-py pipeline. Figures: docs/webhook-bench.md, "Publishing".

    What it must match: the message `apply_async` pushes through kombu's Redis transport
    for the same task and argument, for the pinned Celery and kombu (requirements.txt),
    byte for byte but the ids (task, root and correlation id, delivery tag): Celery's
    protocol-2 headers, properties and body; kombu's envelope (base64 body,
    `delivery_info`, priority); the list it goes to (the queue's name: priority 0, no key
    prefix). tests/conversations/test_queueing_contract.py compares the two and has a
    Celery worker run a task sent this way: after an upgrade of Celery or kombu it says
    whether that still holds.

    Only where that copy is known to hold (`for_task`); everything else takes
    `apply_async`: other brokers and serializers, compression, task protocol 1, a
    global key prefix, `task_routes` (a router may look at the arguments), sent events,
    tasks with their own routing, priority, expiry or serializer, tasks that store
    results, eager mode, publish signals connected (Celery sends them), and calls from
    inside a worker task (Celery records the parent's ids).
    """

    _instances: ClassVar[dict[str, RedisShortPath | None]] = {}
    _instances_lock = threading.Lock()

    def __init__(self, app, url: str) -> None:
        self.app = app
        timeout = app.conf.broker_connection_timeout
        self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=max(timeout or 0, 5.0))
        self._templates: dict[str, _Template | None] = {}

    @classmethod
    def for_task(cls, task: Task) -> RedisShortPath | None:
        """The short path for `task`'s next publish, or None when `apply_async` must send it."""
        app = task.app
        conf = app.conf
        if conf.task_always_eager or app.current_worker_task is not None:
            return None
        if any(signal.receivers for signal in (signals.before_task_publish, signals.after_task_publish, signals.task_sent)):
            return None
        url = conf.broker_url or ""
        try:
            short_path = cls._instances[url]
        except KeyError:
            with cls._instances_lock:
                if url not in cls._instances:
                    # Read once per broker URL: Celery's configuration look-ups are not cheap.
                    cls._instances[url] = cls(app, url) if cls._broker_fits(conf, url) else None
                short_path = cls._instances[url]
        if short_path is None or short_path._template(task) is None:
            return None
        return short_path

    @staticmethod
    def _broker_fits(conf, url: str) -> bool:
        return (
            url.startswith("redis://")
            and conf.task_serializer == "json"
            and not conf.task_compression
            and conf.task_protocol == 2
            and not conf.task_routes
            and not conf.task_send_sent_event
            and not (conf.broker_transport_options or {}).get("global_keyprefix")
        )

    def _template(self, task: Task) -> _Template | None:
        try:
            return self._templates[task.name]
        except KeyError:
            pass
        try:
            template = self._template_build(task)
        except ValueError as exc:
            logger.info("queueing %s through apply_async: %s", task.name, exc)
            template = None
        self._templates[task.name] = template
        return template

    def _template_build(self, task: Task) -> _Template:
        """Headers, queue and properties of `task`'s messages, from Celery's own machinery."""
        app = self.app
        # The task's own execution options (its public attributes), which `apply_async` would apply.
        options = ("queue", "routing_key", "exchange", "priority", "expires", "delivery_mode", "compression")
        if any(getattr(task, name, None) is not None for name in options) or task.serializer not in (None, "json"):
            raise ValueError("the task has its own routing, priority, expiry or serialization options")
        if not task.ignore_result:
            raise ValueError("the task stores its result (Celery tells the result backend of each publish)")
        if getattr(task.shadow_name, "__func__", None) is not Task.shadow_name:
            raise ValueError("the task names itself per call (shadow_name)")
        route = app.amqp.router.route({}, task.name, (0,), {}, task)
        queue = route.pop("queue", None)
        if queue is None or route or queue.exchange.type != "direct":
            raise ValueError("not the default direct routing")
        if queue.queue_arguments or queue.max_priority:
            raise ValueError("a queue with arguments or priorities")
        message = app.amqp.create_task_message(
            "00000000-0000-0000-0000-000000000000",
            task.name,
            (0,),
            {},
            ignore_result=task.ignore_result,
            time_limit=task.time_limit,
            soft_time_limit=task.soft_time_limit,
        )
        properties = {
            "correlation_id": None,
            "reply_to": "",
            "delivery_mode": maybe_delivery_mode(queue.exchange.delivery_mode or app.conf.task_default_delivery_mode),
            "delivery_info": {"exchange": "", "routing_key": queue.name},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": None,
        }
        # Declare the queue once as kombu would (its binding in Redis), then never again.
        with app.producer_or_acquire() as producer:
            producer.maybe_declare(queue, retry=False)
        return _Template(headers=message.headers, queue=queue.name, properties=properties)

    def publish(self, task: Task, ids: list[int]) -> int:
        template = self._template(task)
        if template is None:
            raise ValueError(f"{task.name} takes apply_async (RedisShortPath.for_task says which)")
        reply_to = self.app.thread_oid
        with self.client.pipeline(transaction=False) as pipe:
            for n, pk in enumerate(ids, 1):
                task_id = str(uuid4())
                body = kombu_dumps([[pk], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
                message = {
                    "body": base64.b64encode(body.encode()).decode(),
                    "content-encoding": "utf-8",
                    "content-type": "application/json",
                    "headers": {**template.headers, "id": task_id, "root_id": task_id, "argsrepr": f"({pk!r},)"},
                    "properties": {
                        **template.properties,
                        "correlation_id": task_id,
                        "reply_to": reply_to,
                        "delivery_tag": str(uuid4()),
                    },
                }
                pipe.lpush(template.queue, kombu_dumps(message))
                if n % PUBLISH_BATCH_SIZE == 0:
                    pipe.execute()
            pipe.execute()
        return len(ids)


# A forked process (gunicorn's workers under --preload) builds its own: its own Redis
# connections, and its own pid in the messages' `origin` header.
os.register_at_fork(after_in_child=RedisShortPath._instances.clear)
