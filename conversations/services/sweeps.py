"""The beat's sweepers: the database, not the queue, is the record of what is left to do.

A customer message stored but not handled, or an outbound message still pending, whose
lease has run out (the broker was down at commit time, a worker was killed) is queued
again once it is INBOUND_SWEEP_AFTER_SECONDS old. Each claim counts an attempt: a message
whose turn failed TURN_MAX_ATTEMPTS times is not queued again but surfaced — the error on
the message, the conversation in the human queue (and an available agent's hands), an error in the log — and an outbound
message out of attempts is marked failed. Delivery statuses stored before their message's
wamid, which the send missed, are applied here too.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_noop

from .. import queueing
from ..models import (
    Conversation,
    Direction,
    MediaFile,
    MediaState,
    Message,
    MessageStatus,
    Owner,
    StatusUpdate,
    lease_free,
)
from ..sql import status as status_sql
from .desk import conversation_auto_assign
from .media import media_give_up, media_settle
from .outbound import accepted_recall, message_mark_failed

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500
# Statuses whose message is still unknown this long after they came are not ours to apply
# (a message sent from the WhatsApp Business app or another integration on the same number).
STATUS_SWEEP_WITHIN = timezone.timedelta(days=1)


# Stored reasons are msgids, translated where staff read them (conversations.texts).
NOT_DELIVERED = gettext_noop("Not delivered, attempts made")  # ": <how many>"

def _due(rows: QuerySet) -> QuerySet:
    """The oldest of `rows` that are old enough and that no worker holds."""
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
    return rows.filter(lease_free(now), created_at__lte=cutoff).order_by("created_at")


def inbound_sweep() -> int:
    """Queue the customer messages left unhandled; surface the ones that keep failing."""
    due = _due(Message.objects.filter(direction=Direction.INBOUND, handled_at__isnull=True))
    given_up = list(due.filter(attempts__gte=settings.TURN_MAX_ATTEMPTS).only("pk", "attempts", "conversation_id")[:SWEEP_LIMIT])
    for message in given_up:
        inbound_surface(message=message)
    ids = list(due.filter(attempts__lt=settings.TURN_MAX_ATTEMPTS).values_list("pk", flat=True)[:SWEEP_LIMIT])
    if ids:
        logger.info("sweeper: queueing %d unhandled inbound message(s)", len(ids))
    return queueing.enqueue(queueing.INBOUND_HANDLE, ids)


def inbound_surface(*, message: Message) -> None:
    """A customer message the bot failed to handle TURN_MAX_ATTEMPTS times: shown with its
    error, its conversation in the human queue, an error in the log; not retried again."""
    now = timezone.now()
    reason = gettext_noop("The bot could not handle a message: a person should answer.")  # a msgid (conversations.texts)
    with transaction.atomic():
        if not Message.objects.filter(pk=message.pk, handled_at__isnull=True).update(
            handled_at=now, locked_until=None, error_code="turn_failed", error_title=reason[:255],
            error_detail=gettext_noop("See the worker's log for the errors of each attempt."),
        ):  # fmt: skip
            return
        # To the human queue and an available agent, unless a person has it already (then
        # only the thread moves).
        if Conversation.objects.filter(pk=message.conversation_id, owner=Owner.BOT).update(
            owner=Owner.HUMAN, handoff_reason=reason[:255], handoff_at=now, waiting_since=Coalesce(F("waiting_since"), now),
            revision=F("revision") + 1, changed_at=now,
        ):  # fmt: skip
            conversation_auto_assign(conversation_id=message.conversation_id)
        else:
            Conversation.objects.filter(pk=message.conversation_id).update(revision=F("revision") + 1, changed_at=now)
    logger.error("message %s (conversation %s): %s (%s attempts)", message.pk, message.conversation_id, reason, message.attempts)


def inbound_attempt_count(*, message_id: int) -> bool:
    """Count a turn's attempt whose claim failed: the claim counts it in its own statement,
    rolled back with that statement, and a message whose claim keeps failing would be
    queued again forever. Only while it is unhandled and no worker holds it (True: counted)."""
    return bool(
        Message.objects.filter(pk=message_id, direction=Direction.INBOUND, handled_at__isnull=True)
        .filter(lease_free(timezone.now()))
        .update(attempts=F("attempts") + 1)
    )


def outbound_sweep() -> int:
    """Queue the outbound messages still pending (the broker was down, a worker was lost);
    mark failed the ones out of attempts."""
    due = _due(Message.objects.filter(direction=Direction.OUTBOUND, status=MessageStatus.PENDING))
    accepted = []
    for message in due.filter(attempts__gte=settings.WHATSAPP_SEND_MAX_ATTEMPTS)[:SWEEP_LIMIT]:
        if accepted_recall(message_id=message.pk):
            # The provider took it on its last attempt, whose "sent" was never written: the
            # customer has it. Another attempt records it without sending.
            accepted.append(message.pk)
            continue
        message_mark_failed(
            message=message, code="undelivered", title=f"{NOT_DELIVERED}: {message.attempts}",
            detail=gettext_noop("See the worker's log for the errors of each attempt."),
        )  # fmt: skip
        logger.error("message %s: not delivered after %d attempts, marked failed", message.pk, message.attempts)
    ids = list(due.filter(attempts__lt=settings.WHATSAPP_SEND_MAX_ATTEMPTS).values_list("pk", flat=True)[:SWEEP_LIMIT]) + accepted
    if ids:
        logger.info("sweeper: queueing %d pending outbound message(s)", len(ids))
    return queueing.enqueue(queueing.MESSAGE_DELIVER, ids)


def media_sweep() -> int:
    """Queue the media fetches left pending (the broker was down, a worker was lost); give up
    the ones out of attempts (their messages' turns are queued)."""
    due = _due(MediaFile.objects.filter(state=MediaState.PENDING))
    for media_file in due.filter(attempts__gte=settings.MEDIA_FETCH_MAX_ATTEMPTS).select_related("message")[:SWEEP_LIMIT]:
        reason = f"Not fetched after {media_file.attempts} attempts: see the worker's log."
        if media_give_up(message=media_file.message, state=MediaState.FAILED, error=reason):
            logger.error("message %s: media not fetched after %d attempts, marked failed", media_file.pk, media_file.attempts)
            media_settle(message_id=media_file.pk)
    ids = list(due.filter(attempts__lt=settings.MEDIA_FETCH_MAX_ATTEMPTS).values_list("pk", flat=True)[:SWEEP_LIMIT])
    if ids:
        logger.info("sweeper: queueing %d pending media fetch(es)", len(ids))
    return queueing.enqueue(queueing.MEDIA_FETCH, ids)


def statuses_sweep() -> int:
    """Apply the statuses stored before their message's wamid, which the send missed.

    A send stores the wamid the provider gave it and then applies the statuses already stored
    for it. A status whose transaction was still open at that moment is seen by neither side
    (Meta can report `sent` within milliseconds of answering the send): applied here once
    INBOUND_SWEEP_AFTER_SECONDS old. Returns how many wamids had statuses to apply.
    """
    now = timezone.now()
    older_than = now - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
    wamids = list(
        StatusUpdate.objects.filter(applied=False, created_at__lt=older_than, created_at__gt=now - STATUS_SWEEP_WITHIN)
        .filter(Exists(Message.objects.filter(wamid=OuterRef("wamid"))))
        .values_list("wamid", flat=True)
        .distinct()[:SWEEP_LIMIT]
    )
    if wamids:
        logger.info("sweeper: applying the statuses of %d message(s) stored before their wamid", len(wamids))
        status_sql.statuses_apply_now(wamids)
    return len(wamids)
