"""A webhook delivery received: verified by the provider, kept as an event, handed to ingest.

Nothing slow happens here: no call to OpenAI or Meta. The event row commits with the
messages and statuses it carried (`conversations.ingest`), and their turns are queued after
the commit. Every POST is kept, whatever its body, the unverified ones too (only the first
UNVERIFIED_BODY_LIMIT bytes of those), so any delivery can be inspected and the verified
ones replayed byte for byte.

One bad item never costs the others: what the provider could not read is listed on the
event (`skipped`) and the rest is stored; the answer is 200 unless the database failed,
the one case a retry by the provider can mend.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.utils import timezone

from conversations.ingest import Ingested, delivery_ingest
from conversations.models import Channel
from conversations.providers import provider_for
from conversations.services.channels import channels_active
from integrations.base import Delivery, PayloadError, ProviderError
from integrations.meta.signature import HEADER as SIGNATURE_HEADER

from .models import Outcome, WebhookEvent

logger = logging.getLogger(__name__)

# Unverified bodies are kept for inspection, but only this much of them.
UNVERIFIED_BODY_LIMIT = 16 * 1024


@dataclass
class Receipt:
    status: int  # the HTTP status to answer the provider with
    event: WebhookEvent
    new_message_ids: list[int]


def webhook_receive(*, body: bytes, headers: Mapping[str, str]) -> Receipt:
    channels = channels_active()
    signer = _signer(body, headers, channels)
    signature = headers.get(SIGNATURE_HEADER, "")
    if signer is None:
        event = WebhookEvent.objects.create(
            body=_text(body[:UNVERIFIED_BODY_LIMIT]), signature=signature[:255].replace("\x00", "\ufffd"),
            signature_valid=False, outcome=Outcome.BAD_SIGNATURE,
            detail=f"{SIGNATURE_HEADER} missing" if not signature else f"{SIGNATURE_HEADER} does not match",
            processed_at=timezone.now(),
        )  # fmt: skip
        return Receipt(403, event, [])
    text = _text(body)
    event = WebhookEvent(
        provider=signer.provider, body=text, raw_body=None if text.encode() == body else body, signature=signature[:255], signature_valid=True
    )
    return webhook_process(event=event, channels=channels, signer=signer)


def _text(raw: bytes) -> str:
    """`raw` as text PostgreSQL takes: what is not UTF-8, and NUL, become U+FFFD."""
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _signer(body: bytes, headers: Mapping[str, str], channels: dict[str, Channel]) -> Channel | None:
    """A channel whose provider verifies the delivery (several numbers may share one app, so
    one check per distinct secret)."""
    seen: set[str] = set()
    for channel in channels.values():
        if not channel.app_secret or channel.app_secret in seen:
            continue
        seen.add(channel.app_secret)
        try:
            provider = provider_for(channel)
        except ProviderError:  # a provider not supported yet: not this one
            logger.debug("channel %s cannot verify a delivery", channel.pk, exc_info=True)
            continue
        # Anything verify raises is a bug: a 500 (the provider retries), not a silent 403.
        if provider.verify(body, headers):
            return channel
    return None


def webhook_process(*, event: WebhookEvent, channels: dict[str, Channel], signer: Channel | None) -> Receipt:
    """Parse and store a verified event (also a stored event replayed from admin)."""
    try:
        delivery = (provider_for(signer) if signer else _parser_of(channels)).parse(event.delivered_body)
    except PayloadError as exc:
        event.outcome, event.detail, event.processed_at = Outcome.MALFORMED, f"Malformed body: {exc}"[:2000], timezone.now()
        event.save()
        return Receipt(400, event, [])
    except Exception as exc:
        # A parser's bug, whatever the body: the event is kept for a replay once it is fixed.
        return _failed(event, exc)
    foreign = sorted(
        pid for pid in delivery.phone_number_ids if signer and pid in channels and channels[pid].app_secret != signer.app_secret
    ) + sorted({t.business_account_id for t in delivery.templates if signer and _foreign_account(t.business_account_id, channels, signer)})
    if foreign:
        # Signed with another app's secret than the one this number belongs to.
        event.signature_valid = False
        event.outcome, event.detail, event.processed_at = Outcome.BAD_SIGNATURE, f"not signed by the app of {foreign}", timezone.now()
        event.body, event.raw_body = event.body[:UNVERIFIED_BODY_LIMIT], None
        event.save()
        return Receipt(403, event, [])
    try:
        ingested = delivery_ingest(
            delivery=delivery, channels=channels, record=event, describe=lambda record, result: _describe(record, delivery, result, channels)
        )
    except Exception as exc:
        return _failed(event, exc)
    return Receipt(200, event, ingested.new_message_ids)


def _foreign_account(account: str, channels: dict[str, Channel], signer: Channel) -> bool:
    """The business account is ours but none of its numbers belongs to the app that signed."""
    secrets = {c.app_secret for c in channels.values() if c.business_account_id == account}
    return bool(secrets) and signer.app_secret not in secrets


def _failed(event: WebhookEvent, exc: Exception) -> Receipt:
    """Keep the delivery (outside the rolled-back transaction) and let the provider retry it."""
    logger.exception("webhook processing failed")
    event.pk, event.channel, event.skipped = None, None, []
    event.outcome, event.detail, event.processed_at = Outcome.FAILED, f"{type(exc).__name__}: {exc}"[:2000], timezone.now()
    event.save()
    return Receipt(500, event, [])


def _parser_of(channels: dict[str, Channel]):
    # A replay: the event was verified when it came; any provider of the same format parses it.
    for channel in channels.values():
        return provider_for(channel)
    raise PayloadError("no active channel to read the delivery with")


def _describe(event: WebhookEvent, delivery: Delivery, ingested: Ingested, channels: dict[str, Channel]) -> None:
    """The event's outcome, from what the delivery carried and what was new."""
    served = [m.phone_number_id for m in delivery.messages if m.phone_number_id in channels]
    event.channel = channels[served[-1]] if served else None
    event.message_count = len(delivery.messages)
    event.status_count = len(delivery.statuses)
    event.processed_at = timezone.now()
    if ingested.unknown:
        event.outcome = Outcome.UNKNOWN_CHANNEL
        event.detail = f"no active channel for phone_number_id {', '.join(ingested.unknown)}"
        if served or delivery.statuses:
            event.detail += f"; stored for the others: {_counts(delivery, ingested, served)}"
    elif delivery.items or ingested.templates or delivery.rejected:
        event.outcome = Outcome.PARTIAL if delivery.rejected else Outcome.PROCESSED
        event.detail = _counts(delivery, ingested, served)
    else:
        event.outcome = Outcome.IGNORED
        event.detail = "nothing to act on: " + ", ".join(delivery.ignored)[:500]
    if delivery.contacts:
        event.detail += f"; {len(delivery.contacts)} contact(s) of the WhatsApp Business app"
    if ingested.unknown_accounts:
        event.detail += f"; template update(s) of business account(s) no active channel has: {', '.join(ingested.unknown_accounts)}"
    for chunk in delivery.history:
        # How far the import of past chats has come, for staff looking at the events.
        done = f"phase {chunk.phase}, chunk {chunk.chunk_order}, {chunk.progress}% done"
        event.detail += f"; history {f'declined: {chunk.error}' if chunk.error else done}, {chunk.messages} message(s)"
    if delivery.ignored and event.outcome != Outcome.IGNORED:
        event.detail += "; nothing to act on: " + ", ".join(delivery.ignored)[:500]
    if delivery.rejected:
        event.skipped = [{"kind": r.kind, "id": r.item_id, "reason": r.reason} for r in delivery.rejected]
        skipped = "; ".join(" ".join(filter(None, [r.kind, r.item_id])) + f": {r.reason}" for r in delivery.rejected)
        event.detail = f"{event.detail}; {len(delivery.rejected)} skipped: {skipped}"[:4000]


def _counts(delivery: Delivery, ingested: Ingested, served: list[str]) -> str:
    duplicates = len(served) - len(ingested.new_message_ids)
    counts = f"{len(ingested.new_message_ids)} new message(s), {duplicates} duplicate(s), {len(delivery.statuses)} status(es)"
    counts += f", {len(delivery.preferences)} preference(s)" if delivery.preferences else ""
    return counts + (f", {ingested.templates} template update(s)" if ingested.templates else "")


def webhook_event_replay(*, event: WebhookEvent) -> Receipt:
    """Process a stored, verified event again. Duplicates are absorbed by the wamid constraint."""
    if not event.signature_valid:
        raise ValueError("Only events whose signature was valid can be replayed.")
    replay = WebhookEvent(provider=event.provider, body=event.body, raw_body=event.raw_body, signature=event.signature, signature_valid=True)
    return webhook_process(event=replay, channels=channels_active(), signer=None)
