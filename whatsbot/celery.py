import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from django.conf import settings

from conversations.queueing import (
    INBOUND_SWEEP, MEDIA_RETENTION, MEDIA_SWEEP, MODEL_SHUTDOWNS_CHECK, OUTBOUND_SWEEP, STATUS_SWEEP, TEMPLATES_SYNC_ALL,
)
from whatsbot import gctune

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot.settings")

app = Celery("whatsbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # The database, not the queue, is the record of what is left to do: anything stored
    # but not handled (broker down at commit time, worker lost) is queued again.
    "sweep-unhandled-inbound": {"task": INBOUND_SWEEP, "schedule": 30.0},
    "sweep-unsent-outbound": {"task": OUTBOUND_SWEEP, "schedule": 30.0},
    # Delivery statuses that Meta reported before the send had stored the message's wamid.
    "sweep-early-statuses": {"task": STATUS_SWEEP, "schedule": 30.0},
    # Media whose fetch was lost (broker down, worker killed); stored media past MEDIA_RETENTION_DAYS.
    "sweep-pending-media": {"task": MEDIA_SWEEP, "schedule": 30.0},
    "delete-old-media": {"task": MEDIA_RETENTION, "schedule": 3600.0},
    # OpenAI's shutdown dates of the models in use, for admin and its alerts.
    "check-model-shutdowns": {"task": MODEL_SHUTDOWNS_CHECK, "schedule": 3600.0},
    # The message templates of every channel's business account, as Meta lists them.
    "sync-templates": {"task": TEMPLATES_SYNC_ALL, "schedule": float(settings.TEMPLATES_SYNC_INTERVAL_SECONDS)},
}


# The handlers below import the apps when called: this module is imported before Django's
# apps are loaded (whatsbot/__init__.py).


@worker_shutdown.connect
def _runtime_drain(**kwargs) -> None:
    # The turns handed to the process's event loop are not Celery tasks any more: a warm
    # shutdown waits for them too (what is left stays leased, for the sweeper).
    from conversations import runtime

    runtime.shutdown(settings.WORKER_DRAIN_SECONDS)


@worker_ready.connect
@worker_process_init.connect
def _worker_process_ready(**kwargs) -> None:
    import conversations.tasks  # noqa: F401  (the agent and the OpenAI SDK imported now, before the freeze)

    gctune.files_limit_raise()
    gctune.process_ready()
