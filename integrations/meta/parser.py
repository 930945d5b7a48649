"""Meta's webhook payloads → `integrations.base.Delivery`.

Meta nests what matters under `entry[].changes[].value`; the parser flattens it into items
(messages, statuses, …) and tolerates keys it does not know: Meta adds fields without
notice, and a parser that rejected them would drop customers' messages.

One bad item never costs the others: an item that cannot be read (a wrong type where an
object belongs, an id too long to store, no sender) becomes a `Rejected` with the reason and
the rest of the delivery is read. Only a body that is not JSON or not Meta's envelope at all
raises `PayloadError`. Values are made storable on the way in: a NUL byte or a lone
surrogate (valid JSON, refused by PostgreSQL) becomes U+FFFD, a number too large for a
float (JSON allows `1e400`; PostgreSQL's JSON refuses the `Infinity` it becomes) and
anything nested deeper than MAX_DEPTH become null. Timestamps outside what WhatsApp can
have stamped (`timestamp_parse`) are read as unknown.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from ..base import (
    Author,
    ContactUpdate,
    Delivery,
    HistoryChunk,
    Identity,
    IdentityChange,
    InboundMessage,
    PayloadError,
    PreferenceChange,
    Rejected,
    StatusEvent,
    Template,
    TemplateUpdate,
)

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
KNOWN_TYPES = {
    "text", "image", "audio", "video", "document", "sticker", "location", "contacts",
    "interactive", "button", "reaction", "order", "system", "unsupported", "edit", "revoke",
}  # fmt: skip
# The `object` of a WhatsApp Business Account's webhooks; anything else is well formed but not ours.
OBJECT = "whatsapp_business_account"

# What the database can hold of an id (the wamid and context columns) and a phone number
# (E.164 numbers have at most 15 digits; Meta's wa_id is digits only).
ID_MAX_LENGTH = 255
PHONE = re.compile(r"\d{1,20}")
USER_ID_MAX_LENGTH = 160  # a two-letter country code, ".", optionally "ENT.", up to 128 characters
# What a status's `pricing` says besides `billable` (per-message pricing: "PMP"; a category such
# as "marketing" or "service"; a type: "regular", "free_customer_service", "free_entry_point").
PRICING_KEYS = ("pricing_model", "category", "type")

# Meta's system messages saying a customer's identity moved: a new phone number (and with it a
# new BSUID), or a new BSUID alone (the number changed and may not be shared).
IDENTITY_CHANGES = ("user_changed_number", "user_changed_user_id")
# How Meta's text of such a message names both: "User <name> changed from <old> to <new>".
_CHANGED_FROM = re.compile(r"changed from (\S+) to (\S+)$")

# Characters PostgreSQL's text and jsonb refuse: NUL, and UTF-16 surrogates that JSON's
# "\ud800" escapes can produce without their pair.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Meta's objects are a few levels deep; deeper is junk, and reading it (or writing it as
# JSON) would run out of stack.
MAX_DEPTH = 32

# What a timestamp of Meta's can be: not before WhatsApp existed, not later than the clock
# skew between Meta and us allows. Anything else is a wrong clock or a forged value, and it
# would do harm kept: a date PostgreSQL stores but Python cannot show (year 9999 in the
# console's time zone is year 10000), a 24-hour window held open for years.
EARLIEST = datetime(2009, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(minutes=5)


class ItemError(ValueError):
    """One item of a delivery cannot be read; its siblings can."""


def timestamp_parse(value: Any) -> datetime | None:
    """The time of a Meta timestamp (seconds since the epoch); None when it is none, or
    not one Meta can have stamped: the item is kept and read as received now (a message
    is not refused for its clock)."""
    try:
        at = datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return at if EARLIEST <= at <= datetime.now(tz=timezone.utc) + CLOCK_SKEW else None


def storable(value: Any, depth: int = 0) -> Any:
    """`value` with every string in it (keys too) cleared of characters PostgreSQL refuses,
    and what no database or JSON encoder takes (see the module's docstring) made null."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {storable(k): storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v, depth + 1) for v in value]
    return value


def parse(body: bytes) -> Delivery:
    """The delivery in a POST body; `PayloadError` when it is not one at all."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc}"[:500]) from None
    if not isinstance(data, dict):
        raise PayloadError("expected a JSON object")
    delivery = Delivery()
    if data.get("object", OBJECT) != OBJECT:
        delivery.ignored.append(f"object {str(data.get('object'))[:100]!r} is not handled")
        return delivery
    if not isinstance(data.get("entry"), list):
        raise PayloadError("expected an object with an 'entry' list")
    for entry in data["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            delivery.rejected.append(Rejected("entry", "an entry without a 'changes' list"))
            continue
        for change in changes:
            try:
                _change_parse(change, delivery, entry)
            except ItemError as exc:
                delivery.rejected.append(Rejected("change", str(exc)))
    return delivery


def _change_parse(change: Any, delivery: Delivery, entry: dict) -> None:
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        raise ItemError("a change without a value object")
    field_name = change.get("field")
    account_read = ACCOUNT_FIELDS.get(field_name) if isinstance(field_name, str) else None
    if account_read is not None:
        account_read(storable(change["value"]), storable({"id": entry.get("id"), "time": entry.get("time")}), delivery)
        return
    read = FIELDS.get(field_name) if isinstance(field_name, str) else None
    if read is None:
        delivery.ignored.append(storable(str(field_name))[:100])
        return
    read(storable(change["value"]), delivery)


def items(value: dict, key: str, kind: str, delivery: Delivery) -> Iterator[dict]:
    """The objects of `value[key]`; anything else in the list is rejected."""
    listed = value.get(key)
    if listed is None:
        return
    if not isinstance(listed, list):
        delivery.rejected.append(Rejected(kind, f"'{key}' is not a list"))
        return
    for raw in listed:
        if isinstance(raw, dict):
            yield raw
        else:
            delivery.rejected.append(Rejected(kind, f"an item of '{key}' is not an object"))


def each(value: dict, key: str, kind: str, delivery: Delivery, read: Callable[[dict], Any]) -> list:
    """`read` applied to every object of `value[key]`; an item it cannot read is rejected
    with the reason, and the others are read."""
    out = []
    for raw in items(value, key, kind, delivery):
        try:
            out.append(read(raw))
        except (ItemError, TypeError, ValueError, AttributeError, KeyError) as exc:
            reason = str(exc) if isinstance(exc, ItemError) else f"unreadable: {type(exc).__name__}: {exc}"
            delivery.rejected.append(Rejected(kind, reason[:500], _item_id(raw)))
    return out


def _item_id(raw: dict) -> str:
    value = raw.get("id")
    return value[:ID_MAX_LENGTH] if isinstance(value, str) else ""


def phone_number_id_of(value: dict) -> str:
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if not isinstance(number, (str, int)) or not str(number):
        raise ItemError("a change without metadata.phone_number_id")
    return str(number)


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def id_of(raw: dict, key: str = "id", *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise ItemError(f"no '{key}'")
        return ""
    if not isinstance(value, str):
        raise ItemError(f"'{key}' is not a string")
    if len(value) > ID_MAX_LENGTH:
        raise ItemError(f"'{key}' is longer than {ID_MAX_LENGTH} characters")
    return value


def identity_of(phone: Any = None, user_id: Any = None, parent_user_id: Any = None, username: Any = None) -> Identity:
    """An identity from Meta's fields, checked: `ItemError` when a part is not one."""
    phone, user_id = text_of(phone), text_of(user_id)
    if phone and not PHONE.fullmatch(phone):
        raise ItemError(f"{phone[:40]!r} is not a WhatsApp phone number")
    for part in (user_id, text_of(parent_user_id)):
        if len(part) > USER_ID_MAX_LENGTH:
            raise ItemError(f"a user id longer than {USER_ID_MAX_LENGTH} characters")
    return Identity(
        phone=phone, user_id=user_id, parent_user_id=text_of(parent_user_id)[:USER_ID_MAX_LENGTH], username=text_of(username)[:100]
    )


def contacts_of(value: dict, delivery: Delivery) -> list[tuple[Identity, str]]:
    """The change's `contacts`: each one's identity and profile name."""

    def read(contact: dict) -> tuple[Identity, str]:
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        identity = identity_of(contact.get("wa_id"), contact.get("user_id"), contact.get("parent_user_id"), profile.get("username"))
        return identity, text_of(profile.get("name"))[:255]

    return each(value, "contacts", "contact", delivery, read)


def customer_of(contacts: list[tuple[Identity, str]], phone: Any, user_id: Any) -> tuple[Identity, str]:
    """The customer an item names (by phone, BSUID or both), completed from the change's
    contacts, and its profile name; `ItemError` when it names nobody."""
    named = identity_of(phone, user_id)
    for contact, name in contacts:
        if (named.phone and contact.phone == named.phone) or (named.user_id and contact.user_id == named.user_id):
            return Identity(
                phone=named.phone or contact.phone, user_id=named.user_id or contact.user_id,
                parent_user_id=contact.parent_user_id, username=contact.username,
            ), name  # fmt: skip
    if not named and len(contacts) == 1:
        return contacts[0]
    if not named:
        raise ItemError("no sender: neither a phone number nor a user id")
    return named, ""


def identity_change_of(raw: dict, phone_number_id: str) -> IdentityChange | None:
    """What a system message says moved, when it says a customer's identity did: who the
    customer was (the message's sender, and since August 2026 `system.previous_user_id` /
    `previous_parent_user_id`: a number change regenerates the BSUID too) and who it is now
    (`system.wa_id`, `system.user_id`, `system.parent_user_id`). An older change of BSUID
    may name the previous one only in its text."""
    system = _object(raw.get("system"))
    kind = system.get("type")
    if raw.get("type") != "system" or kind not in IDENTITY_CHANGES:
        return None
    new = identity_of(system.get("wa_id"), system.get("user_id"), system.get("parent_user_id"))
    if not new:
        raise ItemError(f"a {kind} without the new identity")
    old = identity_of(
        raw.get("from"),
        system.get("previous_user_id") or raw.get("from_user_id"),
        system.get("previous_parent_user_id") or raw.get("from_parent_user_id"),
    )
    said = _CHANGED_FROM.search(text_of(system.get("body")))
    if kind == "user_changed_user_id" and not old.user_id and said and said[2] == new.user_id:
        old = identity_of(old.phone, said[1], old.parent_user_id)
    return IdentityChange(
        phone_number_id=phone_number_id, old=old, new=new,
        timestamp=timestamp_parse(raw.get("timestamp")) or datetime.now(tz=timezone.utc),
    )  # fmt: skip


def _messages(value: dict, delivery: Delivery) -> None:
    phone_number_id = phone_number_id_of(value)
    contacts = contacts_of(value, delivery)

    def message(raw: dict) -> InboundMessage:
        change = identity_change_of(raw, phone_number_id)
        if change is None:
            customer, name = customer_of(contacts, raw.get("from"), raw.get("from_user_id"))
        else:
            customer, name = change.old or change.new, ""
        message = message_parse(raw, phone_number_id, customer)
        message.profile_name = name
        if change is not None and change.old:
            delivery.identity_changes.append(change)
        elif change is not None:
            reason = "an identity change that does not say whose: stored as a message of the new identity"
            delivery.rejected.append(Rejected("identity change", reason, message.provider_id))
        return message

    def status(raw: dict) -> StatusEvent:
        value = raw.get("status")
        if not isinstance(value, str) or not value:
            raise ItemError("a status without 'status'")
        return StatusEvent(
            phone_number_id=phone_number_id,
            provider_id=id_of(raw),
            status=value[:10],
            timestamp=timestamp_parse(raw.get("timestamp")) or datetime.now(tz=timezone.utc),
            recipient=identity_of(raw.get("recipient_id"), raw.get("recipient_user_id"), raw.get("recipient_parent_user_id")),
            errors=raw.get("errors") if isinstance(raw.get("errors"), list) else [],
            payload=raw,
            pricing=pricing_of(raw.get("pricing")),
        )

    delivery.messages += each(value, "messages", "message", delivery, message)
    delivery.statuses += each(value, "statuses", "status", delivery, status)
    if not value.get("messages") and not value.get("statuses"):
        delivery.ignored.append("messages:empty")


def pricing_of(value: Any) -> dict:
    """A status's `pricing`: `billable` (a boolean) and the keys that say which rate applies
    (short strings); anything else in it is left out. Meta means to drop `billable`: without
    it, a message is billable when its pricing type is "regular" (not a free one)."""
    pricing = _object(value)
    out: dict[str, Any] = {key: text_of(pricing[key])[:64] for key in PRICING_KEYS if pricing.get(key) not in (None, "")}
    billable = pricing.get("billable")
    if isinstance(billable, str):
        billable = {"true": True, "false": False}.get(billable.lower())
    if isinstance(billable, bool):
        out["billable"] = billable
    elif "type" in out:
        out["billable"] = out["type"] == "regular"
    return out


def _user_preferences(value: dict, delivery: Delivery) -> None:
    """A customer stopped or resumed marketing messages (the "Offers and announcements"
    setting in WhatsApp)."""
    phone_number_id = phone_number_id_of(value)
    contacts = contacts_of(value, delivery)

    def preference(raw: dict) -> PreferenceChange:
        customer, _name = customer_of(contacts, raw.get("wa_id"), raw.get("user_id"))
        category, choice = text_of(raw.get("category")).lower(), text_of(raw.get("value")).lower()
        if not category or not choice:
            raise ItemError("a preference without 'category' or 'value'")
        at = timestamp_parse(raw.get("timestamp"))
        if at is None:
            # The time decides which of two choices is the customer's latest: without it, none.
            raise ItemError("a preference without a readable 'timestamp'")
        return PreferenceChange(
            phone_number_id=phone_number_id, customer=customer, category=category[:64], value=choice[:16], timestamp=at,
            payload=raw, detail=text_of(raw.get("detail"))[:255],
        )  # fmt: skip

    delivery.preferences += each(value, "user_preferences", "preference", delivery, preference)


def message_parse(raw: dict, phone_number_id: str, customer: Identity) -> InboundMessage:
    kind = text_of(raw.get("type")) or "unknown"
    body = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
    text, media = _render(kind, raw, body)
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    if kind == "reaction":
        context_id = id_of(body, "message_id", required=False)
    elif kind in ("edit", "revoke"):
        context_id = id_of(body, "original_message_id")
    else:
        context_id = id_of(context, required=False)
    referral = raw.get("referral")
    return InboundMessage(
        phone_number_id=phone_number_id,
        provider_id=id_of(raw),
        customer=customer,
        type=kind if kind in KNOWN_TYPES else "unknown",
        text=text,
        timestamp=timestamp_parse(raw.get("timestamp")),
        payload=raw,
        media=media,
        context_id=context_id,
        referral=referral if isinstance(referral, dict) else {},
    )


def _render(kind: str, raw: dict, body: dict) -> tuple[str, dict]:
    """A readable text for the message, and its media metadata."""
    if kind == "text":
        return text_of(body.get("body")), {}
    if kind in MEDIA_TYPES:
        media = {k: body[k] for k in ("id", "mime_type", "sha256", "filename", "caption", "voice", "animated", "url") if k in body}
        return text_of(body.get("caption")), media
    if kind == "location":
        parts = [body.get("name"), body.get("address")]
        label = ", ".join(text_of(p) for p in parts if p)
        return label or f"{body.get('latitude')}, {body.get('longitude')}", {}
    if kind == "contacts":
        names = []
        for card in _objects(raw.get("contacts")):
            name = text_of(_object(card.get("name")).get("formatted_name"))
            phones = ", ".join(text_of(p.get("phone")) for p in _objects(card.get("phones")))
            names.append(f"{name} {phones}".strip())
        return "; ".join(names), {}
    if kind == "interactive":
        reply = _object(body.get(body.get("type")) if isinstance(body.get("type"), str) else None)
        return text_of(reply.get("title") or reply.get("id")), {}
    if kind == "button":
        return text_of(body.get("text") or body.get("payload")), {}
    if kind == "reaction":
        return text_of(body.get("emoji")), {}
    if kind == "order":
        lines = [f"{i.get('quantity')} × {i.get('product_retailer_id')}" for i in _objects(body.get("product_items"))]
        return "; ".join(filter(None, [text_of(body.get("text"))] + lines)), {}
    if kind == "edit":
        # The new version of the message, in the shape of a message of its own.
        edited = _object(body.get("message"))
        inner = text_of(edited.get("type"))
        return _render(inner, edited, _object(edited.get(inner)))[0] if inner else "", {}
    if kind == "system":
        return text_of(body.get("body")), {}
    if kind == "unsupported":
        return "; ".join(text_of(e.get("title") or e.get("message")) for e in _objects(raw.get("errors"))), {}
    return "", {}


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- Coexistence: the WhatsApp Business app and Cloud API on one number ---------------------


def _echoes(value: dict, delivery: Delivery) -> None:
    """`smb_message_echoes`: what the business wrote in the WhatsApp Business app (an edit
    or a revoke of it too), in the thread of the customer it went `to`."""
    phone_number_id = phone_number_id_of(value)

    def echo(raw: dict) -> InboundMessage:
        message = message_parse(raw, phone_number_id, _recipient(raw))
        message.author = Author.BUSINESS_APP
        return message

    delivery.messages += each(value, "message_echoes", "echo", delivery, echo)


def _recipient(raw: dict) -> Identity:
    customer = identity_of(raw.get("to"), raw.get("to_user_id"), raw.get("to_parent_user_id"))
    if not customer:
        raise ItemError("an echo without 'to'")
    return customer


def _history(value: dict, delivery: Delivery) -> None:
    """`history`: past chats of a number onboarded from the WhatsApp Business app, in chunks
    that may arrive in any order. A thread is a customer's; a message in it whose `from` is
    not the customer is the business's own."""
    phone_number_id = phone_number_id_of(value)

    def chunk(raw: dict) -> HistoryChunk:
        metadata = _object(raw.get("metadata"))
        errors = _objects(raw.get("errors"))
        before = len(delivery.messages)
        for thread in items(raw, "threads", "thread", delivery):
            try:
                # A thread is named by the customer's phone number (its BSUID when Meta has no number to share).
                named = text_of(thread.get("id"))
                customer = identity_of(named, thread.get("user_id")) if PHONE.fullmatch(named) else identity_of(None, named)
            except ItemError as exc:
                delivery.rejected.append(Rejected("thread", str(exc)))
                continue
            delivery.messages += each(thread, "messages", "message", delivery, lambda m: _past(m, phone_number_id, customer))
        return HistoryChunk(
            phone_number_id=phone_number_id, phase=_number(metadata.get("phase")),
            chunk_order=_number(metadata.get("chunk_order")), progress=_number(metadata.get("progress")),
            messages=len(delivery.messages) - before,
            error="; ".join(text_of(e.get("title") or e.get("message") or e.get("code")) for e in errors)[:500],
        )  # fmt: skip

    delivery.history += each(value, "history", "history", delivery, chunk)


def _past(raw: dict, phone_number_id: str, customer: Identity) -> InboundMessage:
    message = message_parse(raw, phone_number_id, customer)
    if message.timestamp is None:
        raise ItemError("a past message without a timestamp: its place in the thread is unknown")
    sender = text_of(raw.get("from"))
    if sender and sender not in (customer.phone, customer.user_id):
        message.author = Author.BUSINESS_APP
    message.history = True
    return message


def _number(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _state_sync(value: dict, delivery: Delivery) -> None:
    """`smb_app_state_sync`: contacts saved in (`add`, also an edit) or removed from
    (`remove`) the WhatsApp Business app's address book."""
    phone_number_id = phone_number_id_of(value)

    def contact(raw: dict) -> ContactUpdate | None:
        if raw.get("type") != "contact":
            delivery.ignored.append(f"state_sync:{text_of(raw.get('type'))[:40]}")
            return None
        card = _object(raw.get("contact"))
        customer = identity_of(card.get("phone_number"), card.get("user_id"))
        if not customer:
            raise ItemError("a contact without 'phone_number'")
        action = text_of(raw.get("action"))
        if action not in ("add", "remove"):
            raise ItemError(f"a contact action {action[:40]!r} that is neither 'add' nor 'remove'")
        at = timestamp_parse(_object(raw.get("metadata")).get("timestamp")) or datetime.now(tz=timezone.utc)
        return ContactUpdate(
            phone_number_id=phone_number_id, customer=customer, full_name=text_of(card.get("full_name"))[:255],
            first_name=text_of(card.get("first_name"))[:120], action=action, timestamp=at, payload=raw,
        )  # fmt: skip

    delivery.contacts += [c for c in each(value, "state_sync", "contact", delivery, contact) if c is not None]


# --- Message templates: webhooks of the business account, not of a number -------------------

# A status event → the status it leaves the template in; an event not listed changes no
# status (FLAGGED, LOCKED, UNLOCKED, LIMIT_EXCEEDED: the template is as sendable as before)
# and only its reason is kept.
TEMPLATE_STATUS_EVENTS = {
    "APPROVED": "APPROVED", "REJECTED": "REJECTED", "PENDING": "PENDING", "PAUSED": "PAUSED", "DISABLED": "DISABLED",
    "IN_APPEAL": "IN_APPEAL", "ARCHIVED": "ARCHIVED", "UNARCHIVED": "APPROVED", "REINSTATED": "APPROVED",
    "DELETED": "DELETED", "PENDING_DELETION": "PENDING_DELETION",
}  # fmt: skip
TEMPLATE_NAME_MAX_LENGTH = 512
TEMPLATE_LANGUAGE_MAX_LENGTH = 16


def _template_update(value: dict, entry: dict, kind: str) -> TemplateUpdate:
    """The template a change names (its account: the entry's id; its time: the entry's)."""
    account = text_of(entry.get("id"))
    if not account or len(account) > 64:
        raise ItemError(f"a {kind} without the business account's id")
    name, language = text_of(value.get("message_template_name")), text_of(value.get("message_template_language"))
    if not name or not language:
        raise ItemError(f"a {kind} without message_template_name or message_template_language")
    if len(name) > TEMPLATE_NAME_MAX_LENGTH or len(language) > TEMPLATE_LANGUAGE_MAX_LENGTH:
        raise ItemError(f"a {kind} whose template name or language is too long")
    at = timestamp_parse(entry.get("time"))
    if at is None:
        # The time decides whether the update is newer than what is known: without it, none.
        raise ItemError(f"a {kind} without a readable entry 'time'")
    return TemplateUpdate(
        business_account_id=account, name=name, language=language, timestamp=at,
        template_id=text_of(value.get("message_template_id"))[:64], payload=value,
    )  # fmt: skip


def _template_status(value: dict, entry: dict, delivery: Delivery) -> None:
    """`message_template_status_update`: approved, rejected, paused, disabled, … with the
    reason (`reason`, and for a pause or a lock `other_info.description`)."""
    update = _template_update(value, entry, "template status")
    event = text_of(value.get("event")).upper()
    if not event:
        raise ItemError("a template status without 'event'")
    update.status = TEMPLATE_STATUS_EVENTS.get(event, "")
    other, rejection = _object(value.get("other_info")), _object(value.get("rejection_info"))
    reasons = [text_of(value.get("reason")), text_of(other.get("description")), text_of(rejection.get("reason"))]
    update.reason = "; ".join(r for r in reasons if r and r.upper() not in ("NONE", "NULL"))[:1000]
    update.category = text_of(value.get("message_template_category")).upper()[:32]
    delivery.templates.append(update)


def _template_quality(value: dict, entry: dict, delivery: Delivery) -> None:
    """`message_template_quality_update`: GREEN, YELLOW, RED or UNKNOWN."""
    update = _template_update(value, entry, "template quality")
    update.quality = text_of(value.get("new_quality_score")).upper()[:16]
    if not update.quality:
        raise ItemError("a template quality without 'new_quality_score'")
    delivery.templates.append(update)


def _template_category(value: dict, entry: dict, delivery: Delivery) -> None:
    """`template_category_update`: the category a template has now (`new_category`; an
    impending change names the current one there too, and the coming one in
    `correct_category`, applied when Meta says it is done)."""
    update = _template_update(value, entry, "template category")
    update.category = text_of(value.get("new_category")).upper()[:32]
    if not update.category:
        raise ItemError("a template category without 'new_category'")
    delivery.templates.append(update)


def template_of(raw: Any) -> Template:
    """One template of `GET /{waba-id}/message_templates`; `ItemError` when it cannot be used."""
    if not isinstance(raw, dict):
        raise ItemError("a template that is not an object")
    name, language = text_of(raw.get("name")), text_of(raw.get("language"))
    if not name or not language:
        raise ItemError("a template without 'name' or 'language'")
    if len(name) > TEMPLATE_NAME_MAX_LENGTH or len(language) > TEMPLATE_LANGUAGE_MAX_LENGTH:
        raise ItemError(f"template {name[:60]!r}: name or language too long")
    components = raw.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise ItemError(f"template {name[:60]!r}: 'components' is not a list of objects")
    quality = _object(raw.get("quality_score"))
    rejected = text_of(raw.get("rejected_reason"))
    return Template(
        template_id=text_of(raw.get("id"))[:64], name=name, language=language,
        category=text_of(raw.get("category")).upper()[:32], status=text_of(raw.get("status")).upper()[:24],
        quality=text_of(quality.get("score")).upper()[:16],
        reason="" if rejected.upper() in ("", "NONE") else rejected[:1000],
        parameter_format=text_of(raw.get("parameter_format")).upper()[:16] or "POSITIONAL",
        components=storable(components),
    )  # fmt: skip


# Each webhook field of a business account (its entry's `id` is the account's, and its
# `time` when Meta raised the event) this parser reads, and how.
ACCOUNT_FIELDS: dict[str, Callable[[dict, dict, Delivery], None]] = {
    "message_template_status_update": _template_status,
    "message_template_quality_update": _template_quality,
    "template_category_update": _template_category,
}

# Each webhook field this parser reads, and how. A field not listed here is well formed and
# ignored (kept on the webhook's record): calls, groups, account updates, …
FIELDS: dict[str, Callable[[dict, Delivery], None]] = {
    "messages": _messages,
    "user_preferences": _user_preferences,
    "smb_message_echoes": _echoes,
    "history": _history,
    "smb_app_state_sync": _state_sync,
}
