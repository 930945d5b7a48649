"""The stored bytes of customer media the agent reads: a voice note to transcribe, an image to
show the model. Read from Django's default storage, where the fetch put them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..models import MediaFile, MediaState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredMedia:
    content: bytes
    mime_type: str


def media_stored(*, message_id: int) -> bool:
    """Whether the message's media is stored (not pending, expired, refused, failed or deleted)."""
    return MediaFile.objects.filter(message_id=message_id, state=MediaState.STORED).exists()


def media_contents(*, message_ids: list[int], max_bytes: int) -> dict[int, StoredMedia]:
    """The bytes of these messages' stored media, by message id. One larger than `max_bytes`,
    or whose file cannot be read, is left out (and logged): the caller goes on without it."""
    found: dict[int, StoredMedia] = {}
    for media in MediaFile.objects.filter(message_id__in=message_ids, state=MediaState.STORED).only("message_id", "file", "mime_type", "size"):
        if media.size is not None and media.size > max_bytes:
            logger.warning("message %s: its media (%s bytes) is over the %s bytes the agent reads", media.message_id, media.size, max_bytes)
            continue
        try:
            with media.file.open("rb") as file:
                content = file.read(max_bytes + 1)
        except (OSError, ValueError) as exc:
            logger.warning("message %s: its stored media could not be read: %s", media.message_id, exc)
            continue
        if len(content) > max_bytes:
            logger.warning("message %s: its media is over the %s bytes the agent reads", media.message_id, max_bytes)
            continue
        found[media.message_id] = StoredMedia(content=content, mime_type=media.mime_type)
    return found
