"""The Celery worker's pool: Celery's threads pool, except for the tasks that only hand an id
to the process's event loop (`conversations.runtime`).

Those run in the consumer's own thread, as the solo pool runs every task, instead of waking a
pool thread for a few microseconds of work: a GIL hand-off less per text, which the loop
would otherwise wait for. Only while the loop has a free slot, so the consumer never waits;
every other task (the sweeps) runs on the pool's threads. Selected by `CELERY_WORKER_POOL`,
so `celery worker` without `--pool` uses it.
"""

from __future__ import annotations

from celery.concurrency.base import apply_target
from celery.concurrency.thread import TaskPool as ThreadsTaskPool

from conversations.queueing import AGENT_REPLY, INBOUND_HANDLE, MESSAGE_DELIVER

# The tasks whose body is `conversations.runtime.dispatch`.
LOOP_TASKS = frozenset({INBOUND_HANDLE, AGENT_REPLY, MESSAGE_DELIVER})


class TaskPool(ThreadsTaskPool):
    def on_apply(self, target, args=None, kwargs=None, callback=None, accept_callback=None, **options):
        # args: (task name, task id, request, body, content type, content encoding).
        if args and args[0] in LOOP_TASKS:
            # Imported here: Celery loads the pool class before Django's apps are ready.
            from conversations import runtime

            loop = runtime.get()
            if loop.reserve():
                try:
                    return apply_target(target, args, kwargs, callback, accept_callback)
                finally:
                    loop.unreserve()  # if the task did not use it
        return super().on_apply(target, args, kwargs, callback, accept_callback, **options)
