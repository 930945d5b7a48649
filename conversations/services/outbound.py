"""Outbound messages: stored first (pending), then delivered by `conversations.delivery`.

A delivery is claimed with a conditional update of the message's lease, so two workers never
send one message; attempts are counted on the row and bounded (WHATSAPP_SEND_MAX_ATTEMPTS,
exponential backoff honouring the provider's Retry-After). A message the provider accepted
is never sent again: when "sent" cannot be written, the provider's id is kept (`accepted_*`)
until it is, and a later delivery attempt records it instead of sending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_noop

from integrations.base import ProviderError

from .. import queueing
from ..texts import RETRYING
from ..models import (
    LEASE,
    STATUS_RANK,
    Author,
    Conversation,
    Direction,
    MediaFile,
    MediaState,
    Message,
    MessageStatus,
    MessageType,
    lease_free,
    message_preview,
)

logger = logging.getLogger(__name__)

# How long the provider's id of a message it accepted is kept while "sent" is not written.
ACCEPTED_KEEP_SECONDS = 7 * 24 * 3600


def message_build(
    *,
    conversation: Conversation,
    type: str = MessageType.TEXT,
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
    """An outbound row, pending and not saved yet. `claim_for_delivery`: stored already
    claimed (lease and first attempt counted) for the caller that delivers it right after
    its commit."""
    now = now or timezone.now()
    if claim_for_delivery:
        extra = {**extra, "locked_until": now + LEASE, "attempts": 1}
    return Message(
        conversation=conversation, direction=Direction.OUTBOUND, author=author, type=type, text=text,
        payload=payload or {}, media=media or {}, context_wamid=reply_to, status=MessageStatus.PENDING,
        sent_by=user, created_at=now, **extra,
    )  # fmt: skip


def message_send(*, conversation: Conversation, text: str, author: str = Author.STAFF, user=None, type: str = MessageType.TEXT, **fields) -> Message:
    """Store a pending outbound message, move the conversation (last message, revision) and
    queue its delivery once the transaction commits (a staff member's reply, say)."""
    now = timezone.now()
    message = message_build(conversation=conversation, type=type, text=text, author=author, user=user, now=now, **fields)
    with transaction.atomic(savepoint=False):
        message.save(force_insert=True)
        # Anything but a reaction answers the customer: they no longer wait.
        answered = {} if type == MessageType.REACTION else {"waiting_since": None}
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=now, last_message_preview=message_preview(type=type, text=text), revision=F("revision") + 1,
            changed_at=now, **answered,
        )  # fmt: skip
        queueing.enqueue_on_commit(queueing.MESSAGE_DELIVER, [message.pk])
    return message


def media_file_store(*, message: Message, content: bytes, mime_type: str, filename: str, sha256: str) -> MediaFile:
    """Our copy of a file staff send (the thread shows it like a customer's), in Django's default
    storage, stored already: the delivery uploads it to the provider (`media_upload_get`)."""
    media = MediaFile(
        message=message, state=MediaState.STORED, mime_type=mime_type, size=len(content), sha256=sha256, filename=filename,
        stored_at=timezone.now(),
    )  # fmt: skip
    media.file.save(filename, ContentFile(content), save=False)
    try:
        media.save(force_insert=True)
    except BaseException:
        media.file.delete(save=False)
        raise
    return media


@dataclass
class MediaUpload:
    """An outbound message's file as the delivery needs it: the provider's id when it was
    uploaded already (`provider_media_id`), else the bytes to upload."""

    provider_media_id: str
    content: bytes = b""
    mime_type: str = ""
    filename: str = ""


def media_upload_get(*, message_id: int) -> MediaUpload | None:
    """The file of an outbound media message (None: it has none of ours, e.g. sent by link).
    A file no longer in storage fails the message for good: no attempt can send it."""
    media = MediaFile.objects.filter(message_id=message_id).first()
    if media is None:
        return None
    if media.provider_media_id:
        return MediaUpload(provider_media_id=media.provider_media_id)
    try:
        if media.state != MediaState.STORED or not media.file:
            raise FileNotFoundError(media.state)
        with media.file.open("rb") as file:
            content = file.read()
    except (FileNotFoundError, OSError):
        raise ProviderError("the file to send is no longer stored", permanent=True, reason_text=gettext_noop("The file to send is no longer stored.")) from None
    return MediaUpload(provider_media_id="", content=content, mime_type=media.mime_type, filename=media.filename)


def media_uploaded(*, message_id: int, provider_media_id: str) -> None:
    """Keep the provider's id of an uploaded file, so a retry of the send does not upload it again."""
    MediaFile.objects.filter(message_id=message_id).update(provider_media_id=provider_media_id)


def outbound_claim(*, message_id: int) -> Message | None:
    """Claim a pending outbound message for one delivery attempt (counted), with its
    conversation, channel and profile; None when it is not claimable (sent, failed, or
    another worker holds it)."""
    now = timezone.now()
    took = (
        Message.objects.filter(pk=message_id, direction=Direction.OUTBOUND, status=MessageStatus.PENDING)
        .filter(lease_free(now))
        .update(locked_until=now + LEASE, attempts=F("attempts") + 1)
    )
    if not took:
        return None
    return Message.objects.select_related("conversation__channel", "conversation__profile").get(pk=message_id)


def backoff_seconds(*, attempt: int, retry_after: float | None = None) -> float:
    delay = min(settings.WHATSAPP_RETRY_BASE_SECONDS * (2 ** max(0, attempt - 1)), settings.WHATSAPP_RETRY_MAX_SECONDS)
    if retry_after:
        delay = max(delay, min(retry_after, 15 * 60))
    return delay


def delivery_failed(*, message: Message, error: ProviderError) -> bool:
    """The provider refused an attempt: park the lease and queue the next attempt (temporary,
    and attempts left: True), or mark the message failed with the provider's reason (False)."""
    attempts = message.attempts
    if not error.permanent and attempts < settings.WHATSAPP_SEND_MAX_ATTEMPTS:
        delay = backoff_seconds(attempt=attempts, retry_after=error.retry_after)
        # The lease is parked until the retry is due, so the sweeper does not jump the queue.
        Message.objects.filter(pk=message.pk).update(
            locked_until=timezone.now() + timezone.timedelta(seconds=max(0.0, delay - 0.5)),
            error_code=str(error.code or error.http_status or ""),
            error_title=f"{RETRYING}: {error.reason}"[:255],
        )
        logger.warning("message %s: temporary send failure (attempt %s), retry in %.1fs: %s", message.pk, attempts, delay, error)
        queueing.enqueue(queueing.MESSAGE_DELIVER, [message.pk], countdown=delay)
        return True
    message_mark_failed(message=message, code=str(error.code or error.http_status or ""), title=error.reason, detail=error.detail or str(error))
    logger.warning("message %s: send failed for good after %s attempt(s): %s", message.pk, attempts, error)
    return False


def message_mark_failed(*, message: Message, code: str, title: str, detail: str) -> None:
    now = timezone.now()
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.FAILED, status_rank=STATUS_RANK[MessageStatus.FAILED], failed_at=now, error_code=code[:32],
        error_title=title[:255], error_detail=detail, locked_until=None, handled_at=now,
    )  # fmt: skip
    Conversation.objects.filter(pk=message.conversation_id).update(revision=F("revision") + 1, changed_at=now)


def _accepted_key(message_id: int) -> str:
    return f"whatsbot:accepted:{message_id}"


def accepted_remember(*, message_id: int, provider_id: str) -> None:
    """The provider accepted the message as `provider_id` but "sent" is not written yet."""
    cache.set(_accepted_key(message_id), provider_id, ACCEPTED_KEEP_SECONDS)


def accepted_recall(*, message_id: int) -> str:
    """The provider id of a message accepted earlier whose "sent" was not written ("" if none)."""
    return cache.get(_accepted_key(message_id)) or ""


def accepted_forget(*, message_id: int) -> None:
    cache.delete(_accepted_key(message_id))
