"""Meta WhatsApp Cloud API webhooks: signature check and payload parsing.

The parser turns Meta's nested `entry[].changes[].value` structure into flat records and
tolerates keys it does not know: Meta adds fields without notice, and a parser that
rejects them would drop customers' messages.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import Any

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


def signature_valid(*, body: bytes, header: str, app_secret: str) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`."""
    if not header or not app_secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :].strip().lower())


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for `body` (used by the simulator, tests and benchmarks)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp webhook we can read."""


@dataclass
class InboundMessage:
    phone_number_id: str
    wamid: str
    wa_id: str
    type: str
    text: str
    timestamp: datetime | None
    payload: dict
    profile_name: str = ""
    media: dict = field(default_factory=dict)
    context_wamid: str = ""
    referral: dict = field(default_factory=dict)


@dataclass
class StatusEvent:
    phone_number_id: str
    wamid: str
    status: str
    timestamp: datetime
    recipient_id: str
    errors: list
    payload: dict


@dataclass
class ParsedWebhook:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # what was well formed but not acted on

    @property
    def phone_number_ids(self) -> set[str]:
        return {m.phone_number_id for m in self.messages} | {s.phone_number_id for s in self.statuses}


def parse_timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=dt_timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse(data: Any) -> ParsedWebhook:
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise PayloadError("expected an object with an 'entry' list")
    result = ParsedWebhook()
    for entry in data["entry"]:
        if not isinstance(entry, dict):
            raise PayloadError("entry is not an object")
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise PayloadError("change without a value object")
            _parse_change(change, result)
    return result


def _parse_change(change: dict, result: ParsedWebhook) -> None:
    field_name = change.get("field")
    value = change["value"]
    if field_name != "messages":
        result.ignored.append(str(field_name))
        return
    phone_number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
    if not phone_number_id:
        raise PayloadError("messages change without metadata.phone_number_id")
    names = {
        str(c.get("wa_id")): ((c.get("profile") or {}).get("name") or "")
        for c in value.get("contacts") or []
        if isinstance(c, dict)
    }
    for raw in value.get("messages") or []:
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("from"):
            raise PayloadError("message without id or from")
        message = parse_message(raw, phone_number_id)
        message.profile_name = names.get(message.wa_id, "")
        result.messages.append(message)
    for raw in value.get("statuses") or []:
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("status"):
            raise PayloadError("status without id or status")
        result.statuses.append(
            StatusEvent(
                phone_number_id=phone_number_id,
                wamid=str(raw["id"]),
                status=str(raw["status"]),
                timestamp=parse_timestamp(raw.get("timestamp")) or datetime.now(tz=dt_timezone.utc),
                recipient_id=str(raw.get("recipient_id") or ""),
                errors=raw.get("errors") or [],
                payload=raw,
            )
        )
    if not value.get("messages") and not value.get("statuses"):
        result.ignored.append("messages:empty")


def parse_message(raw: dict, phone_number_id: str) -> InboundMessage:
    kind = str(raw.get("type") or "unknown")
    body = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
    text, media = _render(kind, raw, body)
    context = raw.get("context") or {}
    context_wamid = body.get("message_id") if kind == "reaction" else context.get("id")
    return InboundMessage(
        phone_number_id=phone_number_id,
        wamid=str(raw["id"]),
        wa_id=str(raw["from"]),
        type=kind if kind in KNOWN_TYPES else "unknown",
        text=text,
        timestamp=parse_timestamp(raw.get("timestamp")),
        payload=raw,
        media=media,
        context_wamid=str(context_wamid or ""),
        referral=raw.get("referral") or {},
    )


KNOWN_TYPES = {
    "text", "image", "audio", "video", "document", "sticker", "location", "contacts",
    "interactive", "button", "reaction", "order", "system", "unsupported",
}  # fmt: skip


def _render(kind: str, raw: dict, body: dict) -> tuple[str, dict]:
    """A readable text for the message and its media metadata."""
    if kind == "text":
        return str(body.get("body") or ""), {}
    if kind in MEDIA_TYPES:
        media = {k: body[k] for k in ("id", "mime_type", "sha256", "filename", "caption", "voice", "animated", "url") if k in body}
        return str(body.get("caption") or ""), media
    if kind == "location":
        parts = [body.get("name"), body.get("address")]
        label = ", ".join(str(p) for p in parts if p)
        return label or f"{body.get('latitude')}, {body.get('longitude')}", {}
    if kind == "contacts":
        cards = raw.get("contacts") or []
        names = []
        for card in cards:
            name = (card.get("name") or {}).get("formatted_name") or ""
            phones = ", ".join(p.get("phone", "") for p in card.get("phones") or [])
            names.append(f"{name} {phones}".strip())
        return "; ".join(names), {}
    if kind == "interactive":
        reply = body.get(body.get("type") or "") or {}
        return str(reply.get("title") or reply.get("id") or ""), {}
    if kind == "button":
        return str(body.get("text") or body.get("payload") or ""), {}
    if kind == "reaction":
        return str(body.get("emoji") or ""), {}
    if kind == "order":
        items = body.get("product_items") or []
        lines = [f"{i.get('quantity')} × {i.get('product_retailer_id')}" for i in items]
        return "; ".join(filter(None, [str(body.get("text") or "")] + lines)), {}
    if kind == "system":
        return str(body.get("body") or ""), {}
    if kind == "unsupported":
        errors = raw.get("errors") or []
        return "; ".join(str(e.get("title") or e.get("message") or "") for e in errors), {}
    return "", {}
