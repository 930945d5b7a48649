"""The Celery worker's pool: Celery's threads pool, except for the customer texts that go
to the process's event loop (`conversations.eventloop`).

Those tasks only hand a message id to the loop, so they run in the consumer's own thread,
as the solo pool runs every task, instead of waking a pool thread for a few microseconds
of work: a GIL hand-off less per text, which the loop would otherwise wait for. Every
other task (deliveries, sweeps, the threads' path of a text when the loop is off) runs on
the pool's threads as before. Selected by `CELERY_WORKER_POOL`, so `celery worker` without
`--pool` uses it.
"""

from __future__ import annotations

from celery.concurrency.base import apply_target
from celery.concurrency.thread import TaskPool as ThreadsTaskPool

# Tasks whose body, when the loop is on, is `conversations.services.textloop.submit…`.
LOOP_TASKS = frozenset({"conversations.tasks.inbound_handle", "conversations.tasks.agent_reply"})


class TaskPool(ThreadsTaskPool):
    def on_apply(self, target, args=None, kwargs=None, callback=None, accept_callback=None, **options):
        # args: (task name, task id, request, body, content type, content encoding).
        if args and args[0] in LOOP_TASKS and _loop_enabled():
            from conversations import eventloop

            loop = eventloop.get()
            # Only with a free slot: the consumer thread must never wait for the loop (it
            # also dispatches every other task, and the timers of delayed ones). When the
            # loop is full a pool thread makes the task wait, as any other task.
            if loop.reserve():
                try:
                    return apply_target(target, args, kwargs, callback, accept_callback)
                finally:
                    loop.unreserve()  # if the task did not use it
        return super().on_apply(target, args, kwargs, callback, accept_callback, **options)


def _loop_enabled() -> bool:
    from conversations.services import textloop

    return textloop.enabled()
