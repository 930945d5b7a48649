"""Queue Celery tasks after the transaction that stored their rows has committed.

If the broker is unreachable the rows are already safe in the database: the failure is
logged and the beat sweeper queues them later. One broker failure stops the rest of the
batch from trying (and each waiting out the connection timeout).
"""

import logging
from collections.abc import Iterable

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)

# Redis commands buffered before a flush: a 1,000-message Meta batch goes in a few round trips.
PUBLISH_BATCH_SIZE = 200


def enqueue(task: Task, ids: Iterable[int], **options) -> int:
    ids = list(ids)
    if not ids:
        return 0
    queued = 0
    try:
        with task.app.producer_or_acquire() as producer:
            # kombu buffers the batch's LPUSHes and sends them in one Redis round trip on
            # exit (transports without batching publish one by one). Still one task per row.
            with producer.batch(max_size=PUBLISH_BATCH_SIZE):
                for pk in ids:
                    task.apply_async((pk,), producer=producer, retry=False, **options)
                    queued += 1
    except Exception as exc:  # broker down: the rows are stored; the sweeper will queue them
        logger.warning("could not queue %s for %d row(s): %s", task.name, len(ids), exc)
        return 0
    return queued


def enqueue_on_commit(task: Task, ids: Iterable[int], **options) -> None:
    ids = list(ids)
    if ids:
        transaction.on_commit(lambda: enqueue(task, ids, **options))
