"""Meta's WhatsApp Cloud API: webhooks in (signature, parser), the Graph API out."""

from __future__ import annotations

from typing import Mapping

from ..base import Delivery, Identity, Media, Outgoing, TemplateListing
from . import parser
from .graph import GraphClient
from .signature import HEADER, signature_valid


class MetaWebhooks:
    """The inbound half: Meta's deliveries, verified with the app's secret and parsed (also
    the sandbox's, which imitates them)."""

    def __init__(self, *, app_secret: str = "", **_credentials) -> None:
        self.app_secret = app_secret

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return signature_valid(body=body, header=headers.get(HEADER, ""), app_secret=self.app_secret)

    def parse(self, body: bytes) -> Delivery:
        return parser.parse(body)


class MetaProvider(MetaWebhooks):
    """One WhatsApp business number on the Cloud API (`integrations.base.Provider`)."""

    def __init__(self, *, phone_number_id: str, access_token: str = "", app_secret: str = "", api_version: str = ""):
        super().__init__(app_secret=app_secret)
        self.graph = GraphClient(phone_number_id=phone_number_id, access_token=access_token, api_version=api_version)

    async def send(self, outgoing: Outgoing, *, to: Identity) -> str:
        return await self.graph.send(outgoing, to=to)

    async def mark_read(self, provider_id: str, *, typing: bool = True) -> None:
        await self.graph.mark_read(provider_id, typing=typing)

    async def fetch_media(self, ref: str, *, url: str = "", sha256: str = "", max_bytes: int | None = None) -> Media:
        return await self.graph.fetch_media(ref, url=url, sha256=sha256, max_bytes=max_bytes)

    async def templates_list(self, business_account_id: str) -> TemplateListing:
        return await self.graph.templates_list(business_account_id)

    async def upload_media(self, content: bytes, *, mime_type: str, filename: str) -> str:
        return await self.graph.upload_media(content, mime_type=mime_type, filename=filename)
