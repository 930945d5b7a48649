"""Routine that repeats all day stays out of the log at INFO: the console's and the simulator's
polls (one request every 2 s per open page, in runserver's access log) and the periodic tasks
(beat's "Sending due task", the worker's "Task … received" and "… succeeded" every 30 s).
Warnings and errors of the same always pass, and the sweeps log by themselves when they
queue something."""

from __future__ import annotations

import logging
import re

from conversations.queueing import (
    INBOUND_SWEEP, MEDIA_RETENTION, MEDIA_SWEEP, MODEL_SHUTDOWNS_CHECK, OUTBOUND_SWEEP, STATUS_SWEEP, TEMPLATES_SYNC_ALL,
)  # fmt: skip

# The tasks beat runs on a schedule (whatsbot/celery.py's beat_schedule).
PERIODIC_TASKS = frozenset(
    {INBOUND_SWEEP, OUTBOUND_SWEEP, STATUS_SWEEP, MEDIA_SWEEP, MEDIA_RETENTION, MODEL_SHUTDOWNS_CHECK, TEMPLATES_SYNC_ALL}
)
# The polled URLs all end in /poll/ (console list and thread, simulator); the request line is "GET <path> HTTP/1.1".
POLL_REQUEST = re.compile(r"^[A-Z]+ \S*/poll/(?:\?\S*)? ")


def _task_name(record: logging.LogRecord) -> str:
    if record.name == "celery.beat":  # "Scheduler: Sending due task %s (%s)", entry name and task name
        return record.args[1] if isinstance(record.args, tuple) and len(record.args) == 2 else ""
    # celery.worker.strategy ("received") and celery.app.trace ("succeeded") pass one dict of the task's context.
    return record.args.get("name", "") if isinstance(record.args, dict) else ""


class QuietRoutineFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        if record.name == "django.server":
            return not (isinstance(record.args, tuple) and record.args and POLL_REQUEST.match(str(record.args[0])))
        if record.name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
            return _task_name(record) not in PERIODIC_TASKS
        return True
