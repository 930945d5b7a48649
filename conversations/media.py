"""A message's media fetched from its provider, on the event loop (`conversations.runtime`).

`media_fetch` is the one fetch path (the task's, the sweeper's retries): claim the media row
(`services.media`), ask the channel's provider for the bytes — the URL the webhook carried
when there is one, else a fresh one from the media id — checked against the announced sha256
and the type's size limit, then store them through Django's storage. The provider keeps
media for a limited time (an hour on some numbers), so ingest queues the fetch at once.
A temporary failure is tried again after a backoff, a bounded number of times; the provider
no longer having the file makes it expired, a mismatch or a file too large refused.
Idempotent: a second run finds the media stored (or given up) and does nothing.
"""

from __future__ import annotations

import logging

from integrations.base import ProviderError

from . import runtime
from .decisions import Outcome
from .providers import provider_for
from .services import media as media_services

logger = logging.getLogger(__name__)


async def media_fetch(message_id: int) -> Outcome:
    """One fetch attempt of a message's media. Safe to run twice: the claim decides."""
    claimed = await runtime.sync(media_services.media_claim, message_id=message_id)
    if claimed is None:
        return Outcome.SKIPPED
    message = claimed.message
    announced = message.media or {}
    # While the media comes, the message's own lease stays fresh: its turn waits for it.
    with runtime.holding([message.pk] if claimed.turn_held else []):
        try:
            provider = provider_for(message.conversation.channel)
            media = await provider.fetch_media(
                str(announced["id"]), url=str(announced.get("url") or ""), sha256=str(announced.get("sha256") or ""),
                max_bytes=media_services.media_limit(type=message.type, animated=bool(announced.get("animated"))),
            )  # fmt: skip
        except ProviderError as exc:
            return await runtime.sync(media_services.media_fetch_failed, claimed=claimed, error=exc)
        except Exception:
            # Nothing known: the leases run out, the message's turn and the media sweeper go on.
            logger.exception("message %s: media fetch failed, the sweeper will try again", message.pk)
            return Outcome.SKIPPED
        return await runtime.sync(media_services.media_store, claimed=claimed, media=media)
