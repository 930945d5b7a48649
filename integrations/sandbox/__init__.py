"""The simulator's number: deliveries shaped and signed as Meta's, and nothing leaves the
building. The simulator page shows the stored outbound messages, so "sending" only gives a
message an id."""

from __future__ import annotations

import uuid
from typing import Mapping

from ..base import Delivery, Media, Outgoing, ProviderError
from ..meta import parser
from ..meta.signature import HEADER, signature_valid


class SandboxProvider:
    def __init__(self, *, app_secret: str = "", **_credentials):
        self.app_secret = app_secret

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return signature_valid(body=body, header=headers.get(HEADER, ""), app_secret=self.app_secret)

    def parse(self, body: bytes) -> Delivery:
        return parser.parse(body)

    async def send(self, outgoing: Outgoing, *, to: str) -> str:
        return f"sandbox.{uuid.uuid4().hex}"

    async def mark_read(self, provider_id: str, *, typing: bool = True) -> None:
        return None

    async def fetch_media(self, ref: str) -> Media:
        raise ProviderError("The simulator keeps no media.", permanent=True)
