"""What happens to a stored customer message: claimed by one worker, read, answered."""

from __future__ import annotations

import logging

from django.conf import settings

from django.db.models import Q
from django.utils import timezone

from ..models import Direction, Message
from ..queueing import enqueue
from . import replies
from .outbound import LEASE, message_mark_read

logger = logging.getLogger(__name__)


def inbound_claim(*, message_id: int) -> bool:
    now = timezone.now()
    return bool(
        Message.objects.filter(pk=message_id, direction=Direction.INBOUND, handled_at__isnull=True)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .update(locked_until=now + LEASE)
    )


def inbound_handle(*, message_id: int) -> str:
    """Handle one inbound message. Idempotent: a second run (redelivery, sweeper) finds the
    message claimed or handled and does nothing."""
    if not inbound_claim(message_id=message_id):
        return "skipped"
    message = Message.objects.select_related("conversation__channel", "conversation__profile").get(pk=message_id)
    message_mark_read(message_id=message.pk, message=message)
    return replies.inbound_reply(message=message)


def inbound_mark_handled(*, message: Message) -> bool:
    """Mark handled inside the caller's transaction; False if someone else already did."""
    return bool(
        Message.objects.filter(pk=message.pk, handled_at__isnull=True).update(handled_at=timezone.now(), locked_until=None)
    )


def inbound_sweep(*, limit: int = 500) -> int:
    """Queue inbound messages stored but not handled after INBOUND_SWEEP_AFTER_SECONDS."""
    from ..tasks import inbound_handle as task

    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
    ids = list(
        Message.objects.filter(direction=Direction.INBOUND, handled_at__isnull=True, created_at__lte=cutoff)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        logger.info("sweeper: queueing %d unhandled inbound message(s)", len(ids))
    return enqueue(task, ids)


def outbound_sweep(*, limit: int = 500) -> int:
    """Queue outbound messages still pending after a minute (broker was down, worker lost)."""
    from ..models import MessageStatus
    from ..tasks import message_deliver as task

    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
    ids = list(
        Message.objects.filter(direction=Direction.OUTBOUND, status=MessageStatus.PENDING, created_at__lte=cutoff)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        logger.info("sweeper: queueing %d pending outbound message(s)", len(ids))
    return enqueue(task, ids)



