"""How a channel's outbound messages leave: Meta's Graph API, or the sandbox simulator.

Every transport raises `WhatsAppError` (with its `permanent` flag) on failure.
"""

from __future__ import annotations

import uuid

from .eventloop import run_http
from .models import Channel, Message, Provider
from .whatsapp_client import WhatsAppClient, WhatsAppError


class MetaTransport:
    def __init__(self, channel: Channel):
        self.client = WhatsAppClient.for_channel(channel)

    def send(self, message: Message, *, to: str) -> str:
        if message.type == "text":
            return self.client.send_text(to=to, body=message.text, reply_to=message.context_wamid)
        if message.type == "template":
            template = message.payload.get("template") or {}
            return self.client.send_template(
                to=to, name=template.get("name", ""), language=(template.get("language") or {}).get("code", "it"),
                components=template.get("components"),
            )  # fmt: skip
        if message.type in ("image", "audio", "video", "document", "sticker"):
            return self.client.send_media(
                to=to, kind=message.type, media_id=message.media.get("id", ""), link=message.media.get("link", ""),
                caption=message.text, filename=message.media.get("filename", ""),
            )  # fmt: skip
        raise WhatsAppError(f"Cannot send a message of type {message.type!r}", permanent=True)

    def mark_read(self, message: Message, *, typing: bool = True) -> None:
        self.client.mark_read(wamid=message.wamid, typing=typing)

    # On the worker's event loop: the Graph API client is `requests`, so a kept thread of
    # the loop makes the call (one call's wait, not a text's two seconds with the model).
    async def send_async(self, message: Message, *, to: str) -> str:
        return await run_http(self.send, message, to=to)

    async def mark_read_async(self, message: Message, *, typing: bool = True) -> None:
        await run_http(self.mark_read, message, typing=typing)


class SandboxTransport:
    """The simulator's channel: nothing leaves the building. The phone page reads the
    stored outbound messages, so "sending" only gives the message an id."""

    def __init__(self, channel: Channel):
        self.channel = channel

    def send(self, message: Message, *, to: str) -> str:
        return f"sandbox.{uuid.uuid4().hex}"

    def mark_read(self, message: Message, *, typing: bool = True) -> None:
        return None

    async def send_async(self, message: Message, *, to: str) -> str:
        return self.send(message, to=to)

    async def mark_read_async(self, message: Message, *, typing: bool = True) -> None:
        return None


def transport_for(channel: Channel):
    if channel.provider == Provider.SANDBOX:
        return SandboxTransport(channel)
    if channel.provider == Provider.META:
        return MetaTransport(channel)
    raise WhatsAppError(f"Provider {channel.provider!r} is not supported yet", permanent=True)
