"""Meta's webhook payloads → `integrations.base.Delivery`.

Meta nests what matters under `entry[].changes[].value`; the parser flattens it into
messages and statuses and tolerates keys it does not know: Meta adds fields without notice,
and a parser that rejected them would drop customers' messages.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..base import Delivery, InboundMessage, PayloadError, StatusEvent

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
KNOWN_TYPES = {
    "text", "image", "audio", "video", "document", "sticker", "location", "contacts",
    "interactive", "button", "reaction", "order", "system", "unsupported",
}  # fmt: skip
# The `object` of a WhatsApp Business Account's webhooks; anything else is well formed but not ours.
OBJECT = "whatsapp_business_account"


def timestamp_parse(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse(body: bytes) -> Delivery:
    """The delivery in a POST body; `PayloadError` when it is not one we can read."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("expected a JSON object")
    delivery = Delivery()
    if data.get("object", OBJECT) != OBJECT:
        delivery.ignored.append(f"object {data.get('object')!r} is not handled")
        return delivery
    if not isinstance(data.get("entry"), list):
        raise PayloadError("expected an object with an 'entry' list")
    for entry in data["entry"]:
        if not isinstance(entry, dict):
            raise PayloadError("entry is not an object")
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise PayloadError("change without a value object")
            _change_parse(change, delivery)
    return delivery


def _change_parse(change: dict, delivery: Delivery) -> None:
    field_name = change.get("field")
    value = change["value"]
    if field_name != "messages":
        delivery.ignored.append(str(field_name))
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
        message = message_parse(raw, phone_number_id)
        message.profile_name = names.get(message.customer_id, "")
        delivery.messages.append(message)
    for raw in value.get("statuses") or []:
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("status"):
            raise PayloadError("status without id or status")
        delivery.statuses.append(
            StatusEvent(
                phone_number_id=phone_number_id,
                provider_id=str(raw["id"]),
                status=str(raw["status"]),
                timestamp=timestamp_parse(raw.get("timestamp")) or datetime.now(tz=timezone.utc),
                recipient_id=str(raw.get("recipient_id") or ""),
                errors=raw.get("errors") or [],
                payload=raw,
            )
        )
    if not value.get("messages") and not value.get("statuses"):
        delivery.ignored.append("messages:empty")


def message_parse(raw: dict, phone_number_id: str) -> InboundMessage:
    kind = str(raw.get("type") or "unknown")
    body = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
    text, media = _render(kind, raw, body)
    context = raw.get("context") or {}
    context_id = body.get("message_id") if kind == "reaction" else context.get("id")
    return InboundMessage(
        phone_number_id=phone_number_id,
        provider_id=str(raw["id"]),
        customer_id=str(raw["from"]),
        type=kind if kind in KNOWN_TYPES else "unknown",
        text=text,
        timestamp=timestamp_parse(raw.get("timestamp")),
        payload=raw,
        media=media,
        context_id=str(context_id or ""),
        referral=raw.get("referral") or {},
    )


def _render(kind: str, raw: dict, body: dict) -> tuple[str, dict]:
    """A readable text for the message, and its media metadata."""
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
        names = []
        for card in raw.get("contacts") or []:
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
