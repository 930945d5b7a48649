"""The simulator's number: deliveries shaped and signed as Meta's, and nothing leaves the
building. The simulator page shows the stored outbound messages, so "sending" only gives a
message an id."""

from __future__ import annotations

import uuid

from django.utils.translation import gettext_noop

from ..base import Identity, Media, Outgoing, ProviderError
from ..meta import MetaWebhooks


class SandboxProvider(MetaWebhooks):
    """Meta's inbound half (`MetaWebhooks`); an outbound half that keeps everything here."""

    async def send(self, outgoing: Outgoing, *, to: Identity) -> str:
        return f"sandbox.{uuid.uuid4().hex}"

    async def mark_read(self, provider_id: str, *, typing: bool = True) -> None:
        return None

    async def fetch_media(self, ref: str, *, url: str = "", sha256: str = "", max_bytes: int | None = None) -> Media:
        raise ProviderError("The simulator keeps no media.", permanent=True, reason_text=gettext_noop("The simulator keeps no media."))

    async def upload_media(self, content: bytes, *, mime_type: str, filename: str) -> str:
        """An id for the send to name; the bytes stay in our own storage only."""
        return f"sandbox-media.{uuid.uuid4().hex}"
