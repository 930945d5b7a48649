"""What happens to a stored customer message: claimed by one worker, read, answered."""

from __future__ import annotations

import logging

from celery import Task
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from ..models import Direction, Message, MessageStatus, lease_free
from ..queueing import enqueue
from . import fastpath, replies
from .outbound import LEASE, message_mark_read

logger = logging.getLogger(__name__)


def inbound_claim(*, message_id: int) -> bool:
    now = timezone.now()
    return bool(
        Message.objects.filter(pk=message_id, direction=Direction.INBOUND, handled_at__isnull=True)
        .filter(lease_free(now))
        .update(locked_until=now + LEASE)
    )


def inbound_handle(*, message_id: int) -> str:
    """Handle one inbound message. Idempotent: a second run (redelivery, sweeper) finds the
    message claimed or handled and does nothing."""
    if fastpath.enabled():
        # Claim, message, conversation, channel, profile and burst in one statement.
        claimed = fastpath.inbound_claim_load(message_id=message_id, lease=LEASE)
        if claimed is None:
            return "skipped"
        message, burst = claimed.message, claimed.burst
    else:
        if not inbound_claim(message_id=message_id):
            return "skipped"
        message = Message.objects.select_related("conversation__channel", "conversation__profile").get(pk=message_id)
        burst = None
    return inbound_handle_claimed(message=message, burst=burst)


def inbound_handle_claimed(*, message: Message, burst: list[Message] | None = None) -> str:
    """The rest of `inbound_handle`, for a message this worker has just claimed (with its
    conversation, channel and profile loaded; `burst` as `fastpath.Claimed`'s)."""
    message_mark_read(message_id=message.pk, message=message)
    return replies.inbound_reply(message=message, burst=burst)


def inbound_mark_handled(*, message: Message) -> bool:
    """Mark handled inside the caller's transaction; False if someone else already did."""
    return bool(
        Message.objects.filter(pk=message.pk, handled_at__isnull=True).update(handled_at=timezone.now(), locked_until=None)
    )


def inbound_sweep(*, limit: int = 500) -> int:
    """Queue inbound messages stored but not handled after INBOUND_SWEEP_AFTER_SECONDS."""
    from ..tasks import inbound_handle

    rows = Message.objects.filter(direction=Direction.INBOUND, handled_at__isnull=True)
    return _sweep(task=inbound_handle, rows=rows, what="unhandled inbound", limit=limit)


def outbound_sweep(*, limit: int = 500) -> int:
    """Queue outbound messages still pending after a minute (broker was down, worker lost)."""
    from ..tasks import message_deliver

    rows = Message.objects.filter(direction=Direction.OUTBOUND, status=MessageStatus.PENDING)
    return _sweep(task=message_deliver, rows=rows, what="pending outbound", limit=limit)


def _sweep(*, task: Task, rows: QuerySet, what: str, limit: int) -> int:
    """Queue the oldest of `rows` that are old enough and that no worker holds."""
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
    ids = list(rows.filter(lease_free(now), created_at__lte=cutoff).order_by("created_at").values_list("pk", flat=True)[:limit])
    if ids:
        logger.info("sweeper: queueing %d %s message(s)", len(ids), what)
    return enqueue(task, ids)
