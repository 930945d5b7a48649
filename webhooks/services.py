"""Receiving WhatsApp webhooks: verify, store the raw event, store rows, queue the work.

Nothing slow happens here: no call to OpenAI or Meta. The event row, the messages and the
statuses commit together; tasks are queued after the commit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from conversations.models import Channel
from conversations.db import json_default, pipelined_transaction
from conversations.queueing import enqueue_on_commit
from conversations.services.channels import channel_sync_from_environment
from conversations.services.inbound import inbound_messages_store, inbound_rows_store, statuses_apply

from . import meta
from .groupcommit import GroupCommit
from .models import Outcome, WebhookEvent

logger = logging.getLogger(__name__)

# Unverified bodies are kept for inspection, but only this much of them.
UNVERIFIED_BODY_LIMIT = 16 * 1024
# Channels change rarely (admin edits) and are read on every POST: keep them in memory briefly.
CHANNEL_CACHE_SECONDS = 10.0
_channel_cache: tuple[float, dict[str, Channel]] = (0.0, {})
_environment_synced = False
_channel_cache_lock = threading.Lock()


def active_channels() -> dict[str, Channel]:
    global _channel_cache, _environment_synced
    loaded_at, channels = _channel_cache
    if time.monotonic() - loaded_at > CHANNEL_CACHE_SECONDS:
        # One thread of the process reloads; the others keep using what they have meanwhile
        # (on the very first load there is nothing yet: they wait for it).
        if not _channel_cache_lock.acquire(blocking=loaded_at == 0.0):
            return channels
        try:
            loaded_at, channels = _channel_cache
            if time.monotonic() - loaded_at > CHANNEL_CACHE_SECONDS:
                if not _environment_synced:
                    channel_sync_from_environment()
                    _environment_synced = True
                channels = {c.phone_number_id: c for c in Channel.objects.filter(is_active=True)}
                _channel_cache = (time.monotonic(), channels)
        finally:
            _channel_cache_lock.release()
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
        if connection.vendor == "postgresql" and (parsed.messages or statuses) and not unknown:
            # Messages and delivery statuses, for numbers we serve: stored with the other
            # POSTs this process is receiving at the same moment, in one transaction.
            groups = [(channels[pid], messages) for pid, messages in by_channel.items()]
            new_ids = _store(_StoreJob(event, parsed, groups, statuses))
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


@dataclass
class _StoreJob:
    """One POST's messages (per channel), statuses and event row, to store (PostgreSQL)."""

    event: WebhookEvent
    parsed: meta.ParsedWebhook
    groups: list[tuple[Channel, list[meta.InboundMessage]]]
    statuses: list[meta.StatusEvent]


def _store(job: _StoreJob) -> list[int]:
    """Store a POST's messages and event row; return the new messages' ids (tasks queued).

    Concurrent POSTs of this process share one transaction (`groupcommit`). Inside a
    caller's transaction (tests, a replay from admin) the job is stored on its own, in it.
    """
    if connection.in_atomic_block:
        return _jobs_store([job])[0]
    return _group_commit.run(job)


def _jobs_store(jobs: Sequence[_StoreJob]) -> list[list[int]]:
    """The jobs' messages, statuses and event rows in one transaction (PostgreSQL).

    BEGIN and one profiles/conversations/messages statement per channel go out together
    (the results say which messages are new); the threads' UPDATE, the statuses' two
    statements, one INSERT for all the event rows and COMMIT go out together: two round
    trips (one without messages). Then the new messages' tasks are queued in one Redis
    round trip. A `wamid` that two jobs of one batch both carry belongs to the first.
    """
    from conversations.tasks import inbound_handle

    # No health check query first: if the kept-alive connection turns out dead (PostgreSQL
    # restarted), the first round trip fails before any COMMIT was sent, so it is safe to
    # reconnect and run the transaction again once.
    for attempt in (1, 2):
        sent = False
        try:
            with pipelined_transaction(health_check=False) as cursor:
                by_channel: dict[int, tuple[Channel, list]] = {}
                for job in jobs:
                    for channel, messages in job.groups:
                        by_channel.setdefault(channel.pk, (channel, []))[1].extend(messages)
                inserted: list[tuple[int, str]] = []
                for channel, messages in by_channel.values():
                    inserted += inbound_rows_store(channel=channel, messages=messages, cursor=cursor)
                sent = bool(by_channel)
                statuses_apply(statuses=[s for job in jobs for s in job.statuses], cursor=cursor)
                owner: dict[str, int] = {}
                for n, job in enumerate(jobs):
                    for _, messages in job.groups:
                        for m in messages:
                            owner.setdefault(m.wamid, n)
                new_ids: list[list[int]] = [[] for _ in jobs]
                for pk, wamid in inserted:
                    new_ids[owner[wamid]].append(pk)
                for job, ids in zip(jobs, new_ids):
                    job.event.channel = job.groups[-1][0] if job.groups else None
                    _event_outcome(job.event, job.parsed, ids, [])
                cursor.execute(_events_insert_sql(), _events_insert_params([job.event for job in jobs]), prepare=True)
            break
        except OperationalError:
            if sent or attempt == 2 or connection.in_atomic_block or connection.is_usable():
                raise
            logger.warning("database connection lost; reconnecting")
            connection.close()
    for job, (pk,) in zip(jobs, cursor.fetchall(), strict=True):
        job.event.pk = pk
        job.event._state.adding, job.event._state.db = False, "default"
    # Committed already: queued now (or at the commit of the caller's transaction).
    enqueue_on_commit(inbound_handle, sorted(pk for ids in new_ids for pk in ids))
    return new_ids


def _store_weight(job: _StoreJob) -> int:
    return sum(len(messages) for _, messages in job.groups) + len(job.statuses)


# Up to this many messages and statuses in one shared transaction (a Meta batch may bring up to 1,000).
GROUP_COMMIT_MAX_MESSAGES = 200
_group_commit: GroupCommit[_StoreJob, list[int]] = GroupCommit(
    _jobs_store, weight=_store_weight, max_weight=GROUP_COMMIT_MAX_MESSAGES
)


_EVENT_FIELDS = tuple(f for f in WebhookEvent._meta.concrete_fields if not f.primary_key)


@lru_cache(maxsize=1)
def _events_insert_sql() -> str:
    # The rows travel as one JSON parameter (adapting a Python list per column as a
    # PostgreSQL array cost ~20x more CPU), and the statement's text, so its prepared
    # plan, is the same whatever the number of events.
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in _EVENT_FIELDS)
    definitions = ", ".join(f"{qn(f.column)} {f.cast_db_type(connection)}" for f in _EVENT_FIELDS)
    return (
        f"INSERT INTO {qn(WebhookEvent._meta.db_table)} ({columns}) "
        f"SELECT {', '.join('v.' + qn(f.column) for f in _EVENT_FIELDS)} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v(_position integer, {definitions}) ORDER BY v._position "
        f"RETURNING {qn('id')}"
    )


def _events_insert_params(events: Sequence[WebhookEvent]) -> list[str]:
    rows = [
        {"_position": n, **{f.column: getattr(event, f.attname) for f in _EVENT_FIELDS}} for n, event in enumerate(events)
    ]
    return [json.dumps(rows, default=json_default, ensure_ascii=False)]


def webhook_event_replay(*, event: WebhookEvent) -> Receipt:
    """Process a stored, verified event again. Duplicates are absorbed by the wamid constraint."""
    if not event.signature_valid:
        raise ValueError("Only events whose signature was valid can be replayed.")
    replay = WebhookEvent(provider=event.provider, body=event.body, signature=event.signature, signature_valid=True)
    channels = active_channels()
    return webhook_process(event=replay, channels=channels, secret=None)


__all__ = ["webhook_receive", "webhook_process", "webhook_event_replay", "channel_cache_clear"]
