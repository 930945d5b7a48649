"""Sending: store the outbound message first (pending), then hand it to the provider."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import STATUS_RANK, Author, Conversation, Direction, Message, MessageStatus, MessageType, lease_free
from ..queueing import enqueue_on_commit
from ..transports import transport_for
from ..whatsapp_client import WhatsAppError
from . import fastpath
from .inbound import message_preview, status_updates_apply_for

logger = logging.getLogger(__name__)

# How long a worker may hold a message before another may take it over.
LEASE = timezone.timedelta(minutes=5)


def message_send_text(
    *,
    conversation: Conversation,
    text: str,
    author: str = Author.BOT,
    user=None,
    reply_to: str = "",
    queue_delivery: bool = True,
    **extra,
) -> Message:
    """Store a pending outbound text and queue its delivery once the transaction commits
    (or, with `queue_delivery=False`, leave it to the caller: `message_deliver_now`)."""
    return message_queue_outbound(
        conversation=conversation, type=MessageType.TEXT, text=text, author=author, user=user, reply_to=reply_to,
        queue_delivery=queue_delivery, **extra,
    )  # fmt: skip


def message_queue_outbound(
    *,
    conversation: Conversation,
    type: str,
    text: str = "",
    queue_delivery: bool = True,
    bump_conversation: bool = True,
    now=None,
    **fields,
) -> Message:
    """Store a pending outbound message; `fields` are the rest of the row, as
    `message_outbound_build` takes them (author, user, reply_to, payload, media,
    `claim_for_delivery`: stored already claimed (lease and attempt counted) for a caller
    that delivers it right after its commit with `message_deliver_now`, saving the claim's
    UPDATE). `bump_conversation=False`: the caller has already updated the conversation row
    for this message (last message, revision)."""
    now = now or timezone.now()
    message = message_outbound_build(conversation=conversation, type=type, text=text, now=now, **fields)
    with transaction.atomic(savepoint=False):
        message.save(force_insert=True)
        if bump_conversation:
            Conversation.objects.filter(pk=conversation.pk).update(
                last_message_at=now,
                last_message_preview=message_preview(type=type, text=text),
                revision=F("revision") + 1,
                changed_at=now,
            )
        if queue_delivery:
            message_delivery_queue(message=message)
    return message


def message_outbound_build(
    *,
    conversation: Conversation,
    type: str,
    text: str = "",
    author: str = Author.BOT,
    user=None,
    reply_to: str = "",
    payload: dict | None = None,
    media: dict | None = None,
    claim_for_delivery: bool = False,
    now=None,
    **extra,
) -> Message:
    """The pending outbound row, not saved yet (see `message_queue_outbound`)."""
    now = now or timezone.now()
    if claim_for_delivery:
        extra = {**extra, "locked_until": now + LEASE, "attempts": 1}
    return Message(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        author=author,
        type=type,
        text=text,
        payload=payload or {},
        media=media or {},
        context_wamid=reply_to,
        status=MessageStatus.PENDING,
        sent_by=user,
        created_at=now,
        **extra,
    )


def message_delivery_queue(*, message: Message) -> None:
    """Queue the delivery of a stored pending message once the transaction commits."""
    from ..tasks import message_deliver

    enqueue_on_commit(message_deliver, [message.pk])


@dataclass
class DeliveryResult:
    outcome: str  # "sent", "failed", "retry", "skipped"
    retry_in: float = 0.0


def message_deliver_now(*, message: Message, claimed: bool = False) -> DeliveryResult:
    """Deliver a just-committed pending message in the current thread (the worker that
    wrote it), instead of a task round trip. The state machine is the same (pending, claimed
    with a conditional update, then sent or failed); a temporary failure goes to the
    `message_deliver` task's retry, and anything unexpected leaves the row pending for the
    outbound sweeper."""
    try:
        result = message_deliver(message_id=message.pk, message=message, claimed=claimed)
    except Exception:
        logger.exception("message %s: inline delivery failed, the sweeper will retry it", message.pk)
        return DeliveryResult("skipped")
    _retry_queue(message, result)
    return result


def _retry_queue(message: Message, result: DeliveryResult) -> None:
    from ..tasks import message_deliver as task

    if result.outcome == "retry":
        try:
            task.apply_async((message.pk,), countdown=result.retry_in, retry=False)
        except Exception as exc:  # broker down: the sweeper finds the pending row
            logger.warning("message %s: could not queue the delivery retry: %s", message.pk, exc)


async def message_delivered_async(*, message: Message) -> DeliveryResult:
    """`message_deliver_now` for a reply just committed claimed, on the worker's event loop
    (`conversations.eventloop`): the send, then "sent" with the look-up of statuses Meta
    reported early, one prepared statement on the loop's connection."""
    from .. import eventloop

    conversation = message.conversation
    try:
        wamid = await transport_for(conversation.channel).send_async(message, to=conversation.profile.wa_id)
    except WhatsAppError as exc:
        return await eventloop.run_sync(_delivery_failed_queue, message, exc)
    except Exception:
        logger.exception("message %s: inline delivery failed, the sweeper will retry it", message.pk)
        return DeliveryResult("skipped")
    sent_at = timezone.now()
    try:
        async with eventloop.current().connection() as conn:
            early = await fastpath.message_mark_sent_async(
                conn, message_id=message.pk, conversation_id=conversation.pk, wamid=wamid, sent_at=sent_at
            )
    except Exception:
        logger.exception("message %s: sent as %s but not marked sent; the sweeper will see it", message.pk, wamid)
        return DeliveryResult("skipped")
    if early:
        await eventloop.run_sync(status_updates_apply_for, wamid=wamid)
    return DeliveryResult("sent")


def _delivery_failed_queue(message: Message, exc: WhatsAppError) -> DeliveryResult:
    result = _delivery_failed(message, exc)
    _retry_queue(message, result)
    return result


def message_deliver(*, message_id: int, message: Message | None = None, claimed: bool = False) -> DeliveryResult:
    """One delivery attempt. Safe to run twice: the row is claimed with a conditional update.
    `message` (with its conversation, channel and profile loaded) saves reading it again;
    `claimed`: it was stored already claimed by this thread (`claim_for_delivery`)."""
    if not claimed:
        now = timezone.now()
        took = (
            Message.objects.filter(pk=message_id, direction=Direction.OUTBOUND, status=MessageStatus.PENDING)
            .filter(lease_free(now))
            .update(locked_until=now + LEASE, attempts=F("attempts") + 1)
        )
        if not took:
            return DeliveryResult("skipped")
        if message is not None:
            message.attempts = (message.attempts or 0) + 1  # what the claim just stored
    if message is None:
        message = Message.objects.select_related("conversation__channel", "conversation__profile").get(pk=message_id)
    conversation = message.conversation
    try:
        wamid = transport_for(conversation.channel).send(message, to=conversation.profile.wa_id)
    except WhatsAppError as exc:
        return _delivery_failed(message, exc)

    sent_at = timezone.now()
    if fastpath.enabled():
        # One statement, which also says whether Meta reported statuses before we stored the wamid.
        if fastpath.message_mark_sent(message_id=message.pk, conversation_id=conversation.pk, wamid=wamid, sent_at=sent_at):
            status_updates_apply_for(wamid=wamid)
        return DeliveryResult("sent")
    _message_mark_sent(message_id=message.pk, conversation_id=conversation.pk, wamid=wamid, sent_at=sent_at)
    # Meta may have reported delivered/read before we stored the wamid.
    status_updates_apply_for(wamid=wamid)
    return DeliveryResult("sent")


def _message_mark_sent(*, message_id: int, conversation_id: int, wamid: str, sent_at) -> None:
    """The message is sent, the conversation's revision moves (see `fastpath.message_mark_sent`)."""
    Message.objects.filter(pk=message_id).update(
        wamid=wamid, status=MessageStatus.SENT, status_rank=STATUS_RANK[MessageStatus.SENT], sent_at=sent_at,
        locked_until=None, handled_at=sent_at,
    )  # fmt: skip
    Conversation.objects.filter(pk=conversation_id).update(revision=F("revision") + 1, changed_at=sent_at)


def backoff_seconds(*, attempt: int, retry_after: float | None = None) -> float:
    delay = min(settings.WHATSAPP_RETRY_BASE_SECONDS * (2 ** max(0, attempt - 1)), settings.WHATSAPP_RETRY_MAX_SECONDS)
    if retry_after:
        delay = max(delay, min(retry_after, 15 * 60))
    return delay


def _delivery_failed(message: Message, exc: WhatsAppError) -> DeliveryResult:
    attempts = message.attempts
    if not exc.permanent and attempts < settings.WHATSAPP_SEND_MAX_ATTEMPTS:
        delay = backoff_seconds(attempt=attempts, retry_after=exc.retry_after)
        # Park the lease until the retry is due, so the sweeper does not jump the queue.
        Message.objects.filter(pk=message.pk).update(
            locked_until=timezone.now() + timezone.timedelta(seconds=max(0.0, delay - 0.5)),
            error_code=str(exc.code or exc.http_status or ""),
            error_title=f"Retrying: {exc.reason}"[:255],
        )
        logger.warning("message %s: temporary send failure (attempt %s), retry in %.1fs: %s", message.pk, attempts, delay, exc)
        return DeliveryResult("retry", retry_in=delay)
    message_mark_failed(message=message, code=str(exc.code or exc.http_status or ""), title=exc.reason, detail=exc.detail or str(exc))
    logger.warning("message %s: send failed for good after %s attempt(s): %s", message.pk, attempts, exc)
    return DeliveryResult("failed")


def message_mark_failed(*, message: Message, code: str, title: str, detail: str) -> None:
    now = timezone.now()
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.FAILED,
        status_rank=STATUS_RANK[MessageStatus.FAILED],
        failed_at=now,
        error_code=code[:32],
        error_title=title[:255],
        error_detail=detail,
        locked_until=None,
        handled_at=now,
    )
    Conversation.objects.filter(pk=message.conversation_id).update(revision=F("revision") + 1, changed_at=now)


def message_mark_read(*, message_id: int, message: Message | None = None) -> None:
    """Read receipt and typing indicator for an inbound message; best effort, never retried.
    `message` (with its conversation and channel loaded) saves reading it again."""
    if message is None:
        message = Message.objects.select_related("conversation__channel").get(pk=message_id)
    if not message.wamid:
        return
    try:
        transport_for(message.conversation.channel).mark_read(message, typing=True)
    except WhatsAppError as exc:
        logger.info("message %s: could not mark read: %s", message_id, exc)
