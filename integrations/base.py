"""What every messaging provider gives the rest of the product, whatever its payloads look like.

A provider is a folder of `integrations/` with a class that has these calls:

| call | does |
| --- | --- |
| `verify(body, headers) -> bool` | the signature check on the raw body of a webhook delivery |
| `parse(body) -> Delivery` | the delivery's items: customer messages, delivery statuses, what was ignored |
| `await send(outgoing, to) -> str` | the provider's id for the sent message; raises `ProviderError` |
| `await mark_read(provider_id, typing)` | read receipt (and typing indicator) for a customer message |
| `await fetch_media(ref) -> Media` | the bytes of a media item the customer sent |

Nothing outside a provider's folder knows the shape of its payloads: the types below are
what crosses the boundary. A provider raises `ProviderError`, whose `permanent` flag says
whether trying again can help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Protocol


class PayloadError(ValueError):
    """The body is JSON but not a delivery the provider can read."""


@dataclass
class InboundMessage:
    """A message from a customer, as the provider delivered it."""

    phone_number_id: str  # the business number it was sent to (routes it to a channel)
    provider_id: str  # unique per message (Meta's wamid): a redelivery carries the same one
    customer_id: str  # who sent it (Meta's wa_id)
    type: str  # one of conversations.models.MessageType's values
    text: str  # body, caption, or a readable rendering of the content
    timestamp: datetime | None
    payload: dict  # the provider's message object as received
    profile_name: str = ""
    media: dict = field(default_factory=dict)
    context_id: str = ""  # the message this one replies or reacts to
    referral: dict = field(default_factory=dict)


@dataclass
class StatusEvent:
    """A delivery status of a message we sent."""

    phone_number_id: str
    provider_id: str
    status: str
    timestamp: datetime
    recipient_id: str
    errors: list
    payload: dict


@dataclass
class Delivery:
    """Everything one webhook POST carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # well formed, nothing to act on

    @property
    def phone_number_ids(self) -> set[str]:
        return {m.phone_number_id for m in self.messages} | {s.phone_number_id for s in self.statuses}


@dataclass
class Outgoing:
    """A message for the provider to send (the provider picks its own wire format)."""

    type: str  # "text", "template", "image", "audio", "video", "document", "sticker"
    text: str = ""  # the body, or a media caption
    reply_to: str = ""  # the provider id of the message this one answers
    media: dict = field(default_factory=dict)  # {"id": ...} or {"link": ...}, "filename"
    template: dict = field(default_factory=dict)  # {"name", "language": {"code"}, "components"}


@dataclass
class Media:
    content: bytes
    mime_type: str
    sha256: str


@dataclass
class ProviderError(Exception):
    """A call to the provider failed. `permanent`: trying again cannot help."""

    message: str
    permanent: bool
    code: int | None = None
    title: str = ""
    detail: str = ""
    http_status: int | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait
    reason_text: str = ""  # a plain-language reason for staff, when the provider knows one

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @property
    def reason(self) -> str:
        return self.reason_text or self.title or self.message


class Provider(Protocol):
    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool: ...

    def parse(self, body: bytes) -> Delivery: ...

    async def send(self, outgoing: Outgoing, *, to: str) -> str: ...

    async def mark_read(self, provider_id: str, *, typing: bool = True) -> None: ...

    async def fetch_media(self, ref: str) -> Media: ...
