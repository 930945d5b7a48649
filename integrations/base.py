"""What every messaging provider gives the rest of the product, whatever its payloads look like.

A provider is a folder of `integrations/` with a class that has these calls:

| call | does |
| --- | --- |
| `verify(body, headers) -> bool` | the signature check on the raw body of a webhook delivery |
| `parse(body) -> Delivery` | the delivery's items (messages, statuses, preferences, contacts, identity changes, history progress), what was rejected and why, what was ignored |
| `await send(outgoing, to) -> str` | the provider's id for the sent message (`to` is an `Identity`); raises `ProviderError` |
| `await mark_read(provider_id, typing)` | read receipt (and typing indicator) for a customer message |
| `await fetch_media(ref, url, sha256, max_bytes) -> Media` | the bytes of a media item a message carried; `MediaExpired` when the provider no longer has them, `MediaRefused` when they are not what was announced or too large |
| `await templates_list(business_account_id) -> TemplateListing` | the message templates of a business account (providers that keep them) |
| `await upload_media(content, mime_type, filename) -> str` | the provider's id for a file staff send, to name in `Outgoing.media` (`{"id": ...}`); raises `ProviderError` |

Nothing outside a provider's folder knows the shape of its payloads: the types below are
what crosses the boundary. A provider raises `ProviderError`, whose `permanent` flag says
whether trying again can help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Protocol


class PayloadError(ValueError):
    """The body is not a delivery the provider can read at all (not JSON, not its envelope)."""


@dataclass(frozen=True)
class Identity:
    """Who a customer is, as far as the provider said. Any part may be empty, never all of
    `phone` and `user_id`: Meta shares the phone number only when it may."""

    phone: str = ""  # Meta's wa_id
    user_id: str = ""  # business-scoped user id (BSUID), e.g. "IT.13491208655302741918"
    parent_user_id: str = ""  # parent BSUID shared across portfolios, e.g. "IT.ENT.1181…"
    username: str = ""  # "@name" handle, shown instead of the number

    def __bool__(self) -> bool:
        return bool(self.phone or self.user_id)


class Author:
    """Who wrote an item that reaches a customer's thread (`InboundMessage.author`)."""

    CUSTOMER = "customer"
    BUSINESS_APP = "business_app"  # the owner, in the WhatsApp Business app (coexistence)


@dataclass
class InboundMessage:
    """A message in a customer's thread, as the provider delivered it: mostly the customer's
    own; with coexistence also what the business wrote in the WhatsApp Business app (echoes)
    and past chats (history)."""

    phone_number_id: str  # the business number it was sent to (routes it to a channel)
    provider_id: str  # unique per message (Meta's wamid): a redelivery carries the same one
    customer: Identity  # the customer whose thread it belongs to (sender, or recipient of an echo)
    type: str  # one of conversations.models.MessageType's values, or "edit" / "revoke"
    text: str  # body, caption, or a readable rendering of the content
    timestamp: datetime | None
    payload: dict  # the provider's message object as received
    profile_name: str = ""
    media: dict = field(default_factory=dict)
    context_id: str = ""  # the message this one replies to, reacts to, edits or revokes
    referral: dict = field(default_factory=dict)
    author: str = Author.CUSTOMER
    history: bool = False  # imported from past chats: no reply, no window opened


@dataclass
class StatusEvent:
    """A delivery status of a message we sent."""

    phone_number_id: str
    provider_id: str
    status: str
    timestamp: datetime
    recipient: Identity
    errors: list
    payload: dict
    pricing: dict = field(default_factory=dict)  # billable, pricing_model, category, type


@dataclass
class PreferenceChange:
    """A customer's choice about a category of messages (Meta's `user_preferences`)."""

    phone_number_id: str
    customer: Identity
    category: str  # "marketing_messages"
    value: str  # "stop", "resume"
    timestamp: datetime  # when the customer chose: the latest choice wins, whatever the arrival order
    payload: dict
    detail: str = ""  # the provider's description, e.g. "User requested to stop marketing messages"


@dataclass
class ContactUpdate:
    """A contact saved or removed in the WhatsApp Business app (coexistence state sync)."""

    phone_number_id: str
    customer: Identity
    full_name: str
    first_name: str
    action: str  # "add" / "remove"
    timestamp: datetime
    payload: dict


@dataclass
class HistoryChunk:
    """Where the import of past chats stands (coexistence onboarding): one chunk of Meta's
    `history` webhook. Its messages are on `Delivery.messages` with `history` set."""

    phone_number_id: str
    phase: int  # 0: the day before onboarding, 1: days 1 to 90, 2: days 90 to 180
    chunk_order: int  # chunks of a phase may arrive in any order
    progress: int  # of the whole import, 0 to 100
    messages: int  # how many messages this chunk carried
    error: str = ""  # why there is no history (the business declined to share it)


@dataclass
class IdentityChange:
    """A customer's identity moved: a new phone number or a new BSUID (Meta's system messages)."""

    phone_number_id: str
    old: Identity
    new: Identity
    timestamp: datetime


@dataclass
class TemplateUpdate:
    """What the provider said about one of a business account's message templates (Meta's
    `message_template_status_update`, `message_template_quality_update`,
    `template_category_update`). Only the parts the event carries are set; `timestamp`,
    when the provider raised it, decides whether it is newer than what is known."""

    business_account_id: str
    name: str
    language: str
    timestamp: datetime
    template_id: str = ""
    status: str = ""  # APPROVED, REJECTED, PAUSED, DISABLED, PENDING, ... ("" when the event does not change it)
    reason: str = ""  # why it was rejected, paused or disabled
    quality: str = ""  # GREEN, YELLOW, RED, UNKNOWN
    category: str = ""  # MARKETING, UTILITY, AUTHENTICATION
    payload: dict = field(default_factory=dict)


@dataclass
class Template:
    """A message template as the provider lists it. `components` stay in the provider's
    shape (header, body, footer, buttons): they are what a send fills in."""

    template_id: str
    name: str
    language: str
    category: str
    status: str
    quality: str = ""
    reason: str = ""
    parameter_format: str = "POSITIONAL"  # or NAMED
    components: list = field(default_factory=list)


@dataclass
class Rejected:
    """An item the provider delivered that could not be read: skipped, with the reason kept
    on the delivery's record; the other items of the delivery are handled."""

    kind: str  # "message", "status", "change", ...
    reason: str
    item_id: str = ""  # the provider's id for it, when it had a usable one


@dataclass
class Delivery:
    """Everything one webhook POST carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    preferences: list[PreferenceChange] = field(default_factory=list)
    contacts: list[ContactUpdate] = field(default_factory=list)
    identity_changes: list[IdentityChange] = field(default_factory=list)
    history: list[HistoryChunk] = field(default_factory=list)
    templates: list[TemplateUpdate] = field(default_factory=list)  # of a business account, not a number
    rejected: list[Rejected] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # well formed, nothing to act on

    @property
    def items(self) -> list:
        return [*self.messages, *self.statuses, *self.preferences, *self.contacts, *self.identity_changes, *self.history]

    @property
    def phone_number_ids(self) -> set[str]:
        return {item.phone_number_id for item in self.items}


@dataclass
class Outgoing:
    """A message for the provider to send (the provider picks its own wire format)."""

    type: str  # "text", "template", "image", "audio", "video", "document", "sticker", "reaction"
    text: str = ""  # the body, a media caption, or a reaction's emoji ("": the reaction is removed)
    reply_to: str = ""  # the provider id of the message this one answers (a reaction: reacts to)
    media: dict = field(default_factory=dict)  # {"id": ...} or {"link": ...}, "filename"
    template: dict = field(default_factory=dict)  # {"name", "language": {"code"}, "components"}


@dataclass
class TemplateListing:
    """A business account's templates; `rejected`: items that could not be read (skipped,
    with the reason); `complete`: every page was read (a template missing from an incomplete
    listing may still exist)."""

    templates: list[Template] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    complete: bool = True


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


class MediaExpired(ProviderError):
    """The provider no longer has the media (it keeps them for a limited time): permanent."""


class MediaRefused(ProviderError):
    """The media arrived but is not taken: its bytes do not match the announced sha256, or
    they are larger than the limit for their type. Permanent."""


class Provider(Protocol):
    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool: ...

    def parse(self, body: bytes) -> Delivery: ...

    async def send(self, outgoing: Outgoing, *, to: Identity) -> str: ...

    async def mark_read(self, provider_id: str, *, typing: bool = True) -> None: ...

    async def fetch_media(self, ref: str, *, url: str = "", sha256: str = "", max_bytes: int | None = None) -> Media: ...

    async def upload_media(self, content: bytes, *, mime_type: str, filename: str) -> str: ...
