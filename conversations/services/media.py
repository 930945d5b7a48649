"""A message's media: claimed for a fetch, stored, given up on, deleted by retention.

The fetch itself runs on the worker's loop (`conversations.media`); the rows it reads and
writes are here. A fetch is claimed with a conditional update of the media row's lease,
attempts counted and bounded (MEDIA_FETCH_MAX_ATTEMPTS). A customer's live message is
answered after its media (its turn reads the bytes): while the media is fetched the fetch
holds the message's own lease too, so the inbound sweeper does not start its turn early, and
once the media reached a final state (stored, expired, refused, failed) its turn is queued.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.base import Media, MediaExpired, MediaRefused, ProviderError

from .. import queueing
from ..decisions import Outcome
from ..models import LEASE, MEDIA_TYPES, Conversation, Direction, MediaFile, MediaState, Message, lease_free
from ..texts import RETRYING
from .outbound import backoff_seconds

logger = logging.getLogger(__name__)

MB = 1024 * 1024
# WhatsApp's own limits by type (Meta's "Supported media types"): a customer's WhatsApp sends
# nothing larger, so a larger file is not the one announced.
SIZE_LIMITS = {"image": 5 * MB, "audio": 16 * MB, "video": 16 * MB, "document": 100 * MB}
STICKER_LIMIT_STATIC, STICKER_LIMIT_ANIMATED = 100 * 1024, 500 * 1024
# How long a fetch holds its media row: the largest document (100 MB) on a slow link. A worker
# killed meanwhile leaves the row to the sweeper once it runs out.
FETCH_LEASE = timezone.timedelta(minutes=5)
RETENTION_BATCH = 500
RETENTION_BATCHES = 20  # per run: the beat's next run goes on


def media_limit(*, type: str, animated: bool = False) -> int:
    """The largest file a message of `type` may carry, in bytes."""
    if type == "sticker":
        return STICKER_LIMIT_ANIMATED if animated else STICKER_LIMIT_STATIC
    return SIZE_LIMITS.get(type, SIZE_LIMITS["document"])


@dataclass
class Claimed:
    message: Message  # with its conversation and channel
    media_file: MediaFile
    turn_held: bool  # the fetch holds the message's own lease: its turn waits for the media


def media_claim(*, message_id: int) -> Claimed | None:
    """Claim a message's media for one fetch attempt (counted); None when there is nothing to
    fetch or it is not claimable (stored or given up, another worker holds it, out of attempts)."""
    message = Message.objects.select_related("conversation__channel").filter(pk=message_id, type__in=MEDIA_TYPES).first()
    if message is None or not (message.media or {}).get("id"):
        return None
    now = timezone.now()
    if not MediaFile.objects.filter(pk=message_id).exists():
        # Ingest stores the pending row with its message; one stored otherwise (before media
        # were fetched, or by hand) gets it here.
        MediaFile.objects.bulk_create([MediaFile(message_id=message_id, created_at=now)], ignore_conflicts=True)
    with transaction.atomic():
        took = (
            MediaFile.objects.filter(pk=message_id, state=MediaState.PENDING, attempts__lt=settings.MEDIA_FETCH_MAX_ATTEMPTS)
            .filter(lease_free(now))
            .update(locked_until=now + FETCH_LEASE, attempts=F("attempts") + 1)
        )
        if not took:
            return None
        turn_held = bool(
            Message.objects.filter(pk=message_id, direction=Direction.INBOUND, handled_at__isnull=True)
            .filter(lease_free(now))
            .update(locked_until=now + LEASE)
        )
    return Claimed(message=message, media_file=MediaFile.objects.get(pk=message_id), turn_held=turn_held)


def media_store(*, claimed: Claimed, media: Media) -> Outcome:
    """Keep the fetched bytes in the default storage and mark the media stored; the message's
    turn is queued. The file is written before the row (storage I/O outside a transaction); a
    file another fetch beat to it is removed again."""
    message, media_file = claimed.message, claimed.media_file
    announced = message.media or {}
    mime_type = str(announced.get("mime_type") or media.mime_type or "application/octet-stream")[:128]
    # The stored name never carries the customer's file name (the path can reach a storage
    # provider's logs): the type and an extension for the content.
    extension = mimetypes.guess_extension(mime_type.split(";")[0].strip()) or ".bin"
    media_file.file.save(f"{message.type}{extension}", ContentFile(media.content), save=False)
    now = timezone.now()
    with transaction.atomic():
        took = MediaFile.objects.filter(pk=message.pk, state=MediaState.PENDING).update(
            state=MediaState.STORED, file=media_file.file.name, mime_type=mime_type, size=len(media.content), sha256=media.sha256,
            filename=str(announced.get("filename") or "")[:255], error="", locked_until=None, stored_at=now,
        )  # fmt: skip
        if took:
            _thread_changed(message.conversation_id, now)
    if not took:
        media_file.file.storage.delete(media_file.file.name)
        logger.info("message %s: its media was stored by another fetch meanwhile", message.pk)
    media_settle(claimed=claimed)
    return Outcome.STORED


def media_fetch_failed(*, claimed: Claimed, error: ProviderError) -> Outcome:
    """A fetch attempt failed: queue the next one after a backoff (temporary, attempts left),
    or give the media up as expired, refused or failed, with the reason staff see."""
    message, attempts = claimed.message, claimed.media_file.attempts
    if isinstance(error, MediaExpired):
        state, outcome = MediaState.EXPIRED, Outcome.EXPIRED
    elif isinstance(error, MediaRefused):
        state, outcome = MediaState.REFUSED, Outcome.REFUSED
    elif not error.permanent and attempts < settings.MEDIA_FETCH_MAX_ATTEMPTS:
        delay = backoff_seconds(attempt=attempts, retry_after=error.retry_after)
        until = timezone.now() + timezone.timedelta(seconds=max(0.0, delay - 0.5))
        # Both leases parked until the retry is due: the sweepers do not jump the queue, and the
        # message's turn still waits for its media.
        MediaFile.objects.filter(pk=message.pk).update(locked_until=until, error=f"{RETRYING}: {error.reason}"[:255])
        if claimed.turn_held:
            Message.objects.filter(pk=message.pk, handled_at__isnull=True).update(locked_until=until)
        logger.warning("message %s: temporary media fetch failure (attempt %s), retry in %.1fs: %s", message.pk, attempts, delay, error)
        queueing.enqueue(queueing.MEDIA_FETCH, [message.pk], countdown=delay)
        return Outcome.RETRY
    else:
        state, outcome = MediaState.FAILED, Outcome.FAILED
    media_give_up(message=message, state=state, error=error.reason)
    logger.warning("message %s: media %s after %s attempt(s): %s", message.pk, state, attempts, error)
    media_settle(claimed=claimed)
    return outcome


def media_give_up(*, message: Message, state: str, error: str) -> bool:
    """Mark a message's pending media `state` (expired, refused, failed) with the reason."""
    now = timezone.now()
    with transaction.atomic():
        took = MediaFile.objects.filter(pk=message.pk, state=MediaState.PENDING).update(state=state, error=error[:255], locked_until=None)
        if took:
            _thread_changed(message.conversation_id, now)
    return bool(took)


def media_settle(*, claimed: Claimed | None = None, message_id: int | None = None) -> None:
    """The media reached a final state: a customer's live message gets its turn now (the
    turn's claim decides whether it is still due: handled already, it does nothing)."""
    message_id = claimed.message.pk if claimed is not None else message_id
    if claimed is not None and claimed.turn_held:
        Message.objects.filter(pk=message_id, handled_at__isnull=True).update(locked_until=None)
    if Message.objects.filter(pk=message_id, direction=Direction.INBOUND, handled_at__isnull=True).exists():
        queueing.enqueue(queueing.INBOUND_HANDLE, [message_id])


def media_retention_apply() -> int:
    """Delete the stored files older than MEDIA_RETENTION_DAYS days from the storage; the
    message keeps saying what it was and that it was deleted. Returns how many."""
    days = settings.MEDIA_RETENTION_DAYS
    if not days:
        return 0
    deleted = 0
    for _ in range(RETENTION_BATCHES):
        now = timezone.now()
        rows = list(
            MediaFile.objects.filter(state=MediaState.STORED, stored_at__lt=now - timezone.timedelta(days=days))
            .select_related("message")
            .only("pk", "file", "message__conversation_id")
            .order_by("stored_at")[:RETENTION_BATCH]
        )
        for row in rows:
            # The file first: a row marked deleted whose file stayed would keep a customer's
            # photo past the retention with nothing left to find it by.
            if row.file:
                row.file.storage.delete(row.file.name)
            with transaction.atomic():
                if MediaFile.objects.filter(pk=row.pk, state=MediaState.STORED).update(state=MediaState.DELETED, deleted_at=now, file=""):
                    _thread_changed(row.message.conversation_id, now)
                    deleted += 1
        if len(rows) < RETENTION_BATCH:
            break
    if deleted:
        logger.info("retention: deleted %d media file(s) older than %d days", deleted, days)
    return deleted


def _thread_changed(conversation_id: int, now) -> None:
    """The console's poll redraws the thread (the media's bubble changed)."""
    Conversation.objects.filter(pk=conversation_id).update(revision=F("revision") + 1, changed_at=now)
