"""Receiving WhatsApp webhooks: verify, store the raw event, store rows, queue the work.

Nothing slow happens here: no call to OpenAI or Meta. The event row, the messages and the
statuses commit together; tasks are queued after the commit.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from functools import lru_cache

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from conversations.models import Channel
from conversations.db import pipelined_transaction
from conversations.queueing import enqueue_on_commit
from conversations.services.channels import channel_sync_from_environment
from conversations.services.inbound import inbound_messages_store, statuses_apply

from . import meta
from .models import Outcome, WebhookEvent

logger = logging.getLogger(__name__)

# Unverified bodies are kept for inspection, but only this much of them.
UNVERIFIED_BODY_LIMIT = 16 * 1024
# Channels change rarely (admin edits) and are read on every POST: keep them in memory briefly.
CHANNEL_CACHE_SECONDS = 10.0
_channel_cache: tuple[float, dict[str, Channel]] = (0.0, {})
_environment_synced = False


def active_channels() -> dict[str, Channel]:
    global _channel_cache, _environment_synced
    loaded_at, channels = _channel_cache
    if time.monotonic() - loaded_at > CHANNEL_CACHE_SECONDS:
        if not _environment_synced:
            channel_sync_from_environment()
            _environment_synced = True
        channels = {c.phone_number_id: c for c in Channel.objects.filter(is_active=True)}
        _channel_cache = (time.monotonic(), channels)
    return channels


def channel_cache_clear() -> None:
    global _channel_cache, _environment_synced
    _channel_cache = (0.0, {})
    _environment_synced = False


@dataclass
class Receipt:
    status: int
    event: WebhookEvent
    new_message_ids: list[int]


def _matching_secret(body: bytes, signature: str, channels: dict[str, Channel]) -> str | None:
    # Meta signs with the app's secret; several numbers may share one app.
    for secret in {c.app_secret for c in channels.values() if c.app_secret}:
        if meta.signature_valid(body=body, header=signature, app_secret=secret):
            return secret
    return None


def webhook_receive(*, body: bytes, signature: str, provider: str = "meta") -> Receipt:
    channels = active_channels()
    secret = _matching_secret(body, signature, channels)
    if secret is None:
        event = WebhookEvent.objects.create(
            provider=provider,
            body=body[:UNVERIFIED_BODY_LIMIT].decode("utf-8", "replace"),
            signature=signature[:255],
            signature_valid=False,
            outcome=Outcome.BAD_SIGNATURE,
            detail="X-Hub-Signature-256 missing" if not signature else "X-Hub-Signature-256 does not match",
            processed_at=timezone.now(),
        )
        return Receipt(403, event, [])
    text = body.decode("utf-8", "replace")
    event = WebhookEvent(provider=provider, body=text, signature=signature[:255], signature_valid=True)
    return webhook_process(event=event, channels=channels, secret=secret)


def webhook_process(*, event: WebhookEvent, channels: dict[str, Channel] | None = None, secret: str | None = None) -> Receipt:
    """Parse and store a verified event. Also used to replay a stored event."""
    channels = channels if channels is not None else active_channels()
    try:
        data = json.loads(event.body)
        parsed = meta.parse(data) if data.get("object", "whatsapp_business_account") == "whatsapp_business_account" else None
    except (ValueError, AttributeError, meta.PayloadError) as exc:
        event.outcome, event.detail, event.processed_at = Outcome.MALFORMED, f"Malformed body: {exc}"[:2000], timezone.now()
        event.save()
        return Receipt(400, event, [])
    if parsed is None:
        event.outcome, event.detail = Outcome.IGNORED, f"object {data.get('object')!r} is not handled"
        event.processed_at = timezone.now()
        event.save()
        return Receipt(200, event, [])

    from conversations.tasks import inbound_handle

    by_channel: dict[str, list] = defaultdict(list)
    for m in parsed.messages:
        by_channel[m.phone_number_id].append(m)
    statuses = parsed.statuses
    unknown = sorted(pid for pid in parsed.phone_number_ids if pid not in channels)
    foreign = sorted(pid for pid in parsed.phone_number_ids if pid in channels and secret and channels[pid].app_secret != secret)
    if foreign:
        # Signed with another app's secret than the one this number belongs to.
        event.signature_valid = False
        event.outcome, event.detail, event.processed_at = Outcome.BAD_SIGNATURE, f"not signed by the app of {foreign}", timezone.now()
        event.body = event.body[:UNVERIFIED_BODY_LIMIT]
        event.save()
        return Receipt(403, event, [])

    try:
        if connection.vendor == "postgresql" and parsed.messages and not statuses and not unknown and len(by_channel) == 1:
            # The common delivery: messages for one number. Two round trips, see below.
            new_ids = _messages_store_pipelined(event, parsed, channels[parsed.messages[0].phone_number_id], by_channel)
            enqueue_on_commit(inbound_handle, new_ids)  # committed already: runs now (or at the caller's commit)
        else:
            with transaction.atomic():
                new_ids = []
                for phone_number_id, messages in by_channel.items():
                    channel = channels.get(phone_number_id)
                    if channel is None:
                        continue
                    event.channel = channel
                    new_ids += inbound_messages_store(channel=channel, messages=messages)
                statuses_apply(statuses=[s for s in statuses if s.phone_number_id in channels])
                _event_outcome(event, parsed, new_ids, unknown)
                event.save()
                enqueue_on_commit(inbound_handle, new_ids)
    except Exception as exc:
        # Keep the delivery (outside the rolled-back transaction) and let Meta retry it.
        logger.exception("webhook processing failed")
        event.pk = None
        event.channel = None
        event.outcome, event.detail, event.processed_at = Outcome.FAILED, f"{type(exc).__name__}: {exc}"[:2000], timezone.now()
        event.save()
        return Receipt(500, event, [])
    return Receipt(200, event, new_ids)


def _event_outcome(event: WebhookEvent, parsed: meta.ParsedWebhook, new_ids: list[int], unknown: list[str]) -> None:
    statuses = parsed.statuses
    event.message_count = len(parsed.messages)
    event.status_count = len(statuses)
    event.processed_at = timezone.now()
    if unknown:
        event.outcome = Outcome.UNKNOWN_CHANNEL
        event.detail = f"no active channel for phone_number_id {', '.join(unknown)}"
    elif parsed.messages or statuses:
        event.outcome = Outcome.PROCESSED
        duplicates = len(parsed.messages) - len(new_ids)
        event.detail = f"{len(new_ids)} new message(s), {duplicates} duplicate(s), {len(statuses)} status(es)"
    else:
        event.outcome = Outcome.IGNORED
        event.detail = "nothing to act on: " + ", ".join(parsed.ignored)[:500]


def _messages_store_pipelined(
    event: WebhookEvent, parsed: meta.ParsedWebhook, channel: Channel, by_channel: dict[str, list]
) -> list[int]:
    """Messages for one channel and the event row in one transaction, two round trips (PostgreSQL).

    BEGIN and the profiles/conversations/messages statement go out together (its result
    says which messages are new); the threads' UPDATE, the event INSERT and COMMIT go out
    together. The ORM path takes six round trips and builds the event INSERT per request.
    """
    # No health check query first: if the kept-alive connection turns out dead (PostgreSQL
    # restarted), the first round trip fails before any COMMIT was sent, so it is safe to
    # reconnect and run the transaction again once.
    for attempt in (1, 2):
        sent = False
        try:
            with pipelined_transaction(health_check=False) as cursor:
                new_ids = inbound_messages_store(channel=channel, messages=by_channel[channel.phone_number_id], cursor=cursor)
                sent = True
                event.channel = channel
                _event_outcome(event, parsed, new_ids, [])
                sql, params = _event_insert(event)
                cursor.execute(sql, params, prepare=True)
            break
        except OperationalError:
            if sent or attempt == 2 or connection.in_atomic_block or connection.is_usable():
                raise
            logger.warning("database connection lost; reconnecting")
            connection.close()
    event.pk = cursor.fetchone()[0]
    event._state.adding, event._state.db = False, "default"
    return new_ids


_EVENT_FIELDS = tuple(f for f in WebhookEvent._meta.concrete_fields if not f.primary_key)


@lru_cache(maxsize=1)
def _event_insert_sql() -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in _EVENT_FIELDS)
    values = ", ".join(["%s"] * len(_EVENT_FIELDS))
    return f"INSERT INTO {qn(WebhookEvent._meta.db_table)} ({columns}) VALUES ({values}) RETURNING {qn('id')}"


def _event_insert(event: WebhookEvent) -> tuple[str, list]:
    # Plain str, int, bool and datetime values: psycopg adapts them as they are.
    values = [getattr(event, f.attname) for f in _EVENT_FIELDS]
    return _event_insert_sql(), [str(v) if isinstance(v, str) else v for v in values]


def webhook_event_replay(*, event: WebhookEvent) -> Receipt:
    """Process a stored, verified event again. Duplicates are absorbed by the wamid constraint."""
    if not event.signature_valid:
        raise ValueError("Only events whose signature was valid can be replayed.")
    replay = WebhookEvent(provider=event.provider, body=event.body, signature=event.signature, signature_valid=True)
    channels = active_channels()
    return webhook_process(event=replay, channels=channels, secret=None)


__all__ = ["webhook_receive", "webhook_process", "webhook_event_replay", "channel_cache_clear"]
