"""Ingest: what a provider delivered, stored in one transaction and queued on commit.

The webhook hands over a parsed `Delivery`, the active channels it may concern and its own
record of the delivery (the raw event, which the webhook owns); this service stores the
customer messages (profiles, conversations, thread state), the delivery statuses, the
customers' preferences, what Meta said about the business account's message templates
(status, quality, category: `sql.templates`) and the record together, and queues a turn for
each new message once they are committed. A message stored already (providers redeliver for days) is not
stored, queued or answered again.

Edits and deletions of messages (`REVISION_TYPES`, stored as messages of their own) are
applied here, in the delivery's transaction (`sql.ingest.revisions_apply`), not by a turn:
they change what staff see whoever wrote the message (the customer, or the business in the
WhatsApp Business app, whose messages have no turn); they hold before any turn reads the
message (a deleted message is never answered); and the one statement that applies them
gives the same result whichever came first, so an edit stored before its message is
applied when the message is stored. A customer's edit still gets a turn, which only
extracts the customer's details again from the new text (`turn`).

A number shared with the WhatsApp Business app (coexistence) delivers more to a thread: what
the owner wrote in the app (an echo: a staff message, sent already, and the conversation goes
to a person) and past chats (history: stored as they were, no turn, no window opened, nothing
unread); and the names the owner saved there (`services.contacts`).

Concurrent deliveries of one web process share one transaction (`GroupCommit`): while one
request thread stores, the requests arriving meanwhile queue up and the next flush stores
all of them at once. A delivery of one message costs two round trips to PostgreSQL and one
to Redis however many others share them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError, connection
from django.db.models import Model
from django.utils import timezone

from integrations import base
from integrations.base import ContactUpdate, Delivery, Identity, IdentityChange, InboundMessage, TemplateUpdate

from . import queueing
from .groupcommit import GroupCommit
from .models import (
    MEDIA_TYPES,
    REVISION_TYPES,
    SILENT_TYPES,
    STATUS_RANK,
    Author,
    Channel,
    Direction,
    MessageStatus,
    Origin,
    message_preview,
)
from .services.contacts import contacts_apply
from .sql import ingest as ingest_sql
from .sql import pipelined_transaction
from .sql.preferences import preferences_store
from .sql.status import statuses_store
from .sql.templates import templates_apply

logger = logging.getLogger(__name__)

# Up to this many messages and statuses in one shared transaction (Meta batches up to 1,000).
GROUP_COMMIT_MAX_ITEMS = 200
# Why a conversation went to a person when its owner wrote in the WhatsApp Business app.
HANDOFF_BUSINESS_APP = "The owner answered in the WhatsApp Business app."


@dataclass
class Ingested:
    """What a delivery added."""

    new_message_ids: list[int] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # numbers with no active channel: their items are dropped
    templates: int = 0  # template updates applied
    unknown_accounts: list[str] = field(default_factory=list)  # business accounts no active channel has: their template updates are dropped


@dataclass
class _Job:
    by_channel: list[tuple[Channel, list[InboundMessage]]]
    statuses: list
    preferences: list
    contacts: list[ContactUpdate]
    unknown: list[str]
    record: Model | None
    describe: Callable[[Model, Ingested], None] | None
    identity_changes: list[IdentityChange] = field(default_factory=list)
    templates: list[TemplateUpdate] = field(default_factory=list)
    # The channel whose credentials sync each business account the templates belong to.
    accounts: dict[str, int] = field(default_factory=dict)
    unknown_accounts: list[str] = field(default_factory=list)


def delivery_ingest(
    *,
    delivery: Delivery,
    channels: dict[str, Channel],
    record: Model | None = None,
    describe: Callable[[Model, Ingested], None] | None = None,
) -> Ingested:
    """Store `delivery`'s messages, statuses and preferences for the numbers in `channels`
    (by phone number id) with `record` (an unsaved row, e.g. the webhook's event), in one
    transaction; queue the new messages' turns after the commit. `describe(record, ingested)` fills the
    record in before it is stored. Inside a caller's atomic block (a test, say) the delivery
    is stored on its own, in it."""
    by_channel: dict[str, list[InboundMessage]] = defaultdict(list)
    for message in delivery.messages:
        by_channel[message.phone_number_id].append(message)
    job = _Job(
        by_channel=[(channels[pid], messages) for pid, messages in by_channel.items() if pid in channels],
        statuses=[s for s in delivery.statuses if s.phone_number_id in channels],
        preferences=[p for p in delivery.preferences if p.phone_number_id in channels],
        contacts=[c for c in delivery.contacts if c.phone_number_id in channels],
        unknown=sorted(pid for pid in delivery.phone_number_ids if pid not in channels),
        record=record,
        describe=describe,
        identity_changes=[c for c in delivery.identity_changes if c.phone_number_id in channels],
    )
    accounts = {c.business_account_id: c.pk for c in sorted(channels.values(), key=lambda c: -c.pk) if c.business_account_id}
    job.templates = [t for t in delivery.templates if t.business_account_id in accounts]
    job.accounts = {t.business_account_id: accounts[t.business_account_id] for t in job.templates}
    job.unknown_accounts = sorted({t.business_account_id for t in delivery.templates} - set(accounts))
    if connection.in_atomic_block:
        return _store([job])[0]
    return _group_commit.run(job)


def _store(jobs: Sequence[_Job]) -> list[Ingested]:
    """The jobs' rows in one transaction, then their turns queued (one Redis round trip).

    BEGIN and one profiles/conversations/messages statement per channel go out together
    (their results say which messages are new); the thread-state UPDATE, the statuses' and
    the preferences' two statements each, the records' INSERT and COMMIT go out together. A
    wamid that two jobs of one batch both carry belongs to the first.
    """
    # No health check first: if the kept connection turns out dead (PostgreSQL restarted),
    # the first round trip fails before any COMMIT was sent, so it is safe to reconnect
    # and run the transaction again, once.
    for attempt in (1, 2):
        # Fresh each attempt: what a rolled-back attempt found new was never stored.
        results = [Ingested(unknown=job.unknown, templates=len(job.templates), unknown_accounts=job.unknown_accounts) for job in jobs]
        sent = False
        try:
            with pipelined_transaction(health_check=False) as cursor:
                _identities_move(cursor, jobs)
                (inserted, revised), sent = _rows_store(cursor, jobs), True
                ingest_sql.threads_update(cursor, _threads(jobs, inserted))
                fetched = _with_media(jobs)
                ingest_sql.media_pending_store(cursor, [pk for pk, wamid, _conversation in inserted if wamid in fetched])
                revising = ingest_sql.revisions_apply(cursor, _revised_wamids(jobs, inserted, revised))
                statuses_store(cursor, [s for job in jobs for s in job.statuses])
                preferences_store(cursor, [p for job in jobs for p in job.preferences])
                contacts_apply(cursor, [c for job in jobs for c in job.contacts])
                unsynced = {a.business_account_id for a in templates_apply(cursor, _template_rows(jobs)) if not a.synced}
                owner: dict[str, int] = {}
                for n, job in enumerate(jobs):
                    for _channel, messages in job.by_channel:
                        for m in messages:
                            owner.setdefault(m.provider_id, n)
                for pk, wamid, _conversation in inserted:
                    results[owner[wamid]].new_message_ids.append(pk)
                records = [job.record for job in jobs if job.record is not None]
                for job, result in zip(jobs, results):
                    if job.record is not None and job.describe is not None:
                        job.describe(job.record, result)
                if records:
                    ingest_sql.records_insert(cursor, records)
            break
        except OperationalError:
            if sent or attempt == 2 or connection.in_atomic_block or connection.is_usable():
                raise
            logger.warning("database connection lost; reconnecting")
            connection.close()
    if records:
        ingest_sql.records_saved(cursor, records)
    answered = {m.provider_id for job in jobs for _channel, messages in job.by_channel for m in messages if _answered(m)}
    # A message with a file has its media fetched first; a customer's then gets its turn (the
    # fetch queues it once the media is stored or given up), so the turn finds the bytes.
    queueing.enqueue_on_commit(
        queueing.INBOUND_HANDLE, sorted(pk for pk, wamid, _conversation in inserted if wamid in answered and wamid not in fetched)
    )
    queueing.enqueue_on_commit(queueing.MEDIA_FETCH, sorted(pk for pk, wamid, _conversation in inserted if wamid in fetched))
    _templates_sync_queue(jobs, unsynced)
    _previews_revise(ingest_sql.revised_read(revising))
    return results


def _template_rows(jobs: Sequence[_Job]) -> list[dict]:
    """The template updates as `sql.templates` rows: only the parts each one carries, each
    with the event's time (an older one than what is stored changes nothing)."""
    rows = []
    for update in (t for job in jobs for t in job.templates):
        row = {"business_account_id": update.business_account_id, "name": update.name, "language": update.language, "template_id": update.template_id}
        if update.status:
            row.update(status=update.status, reason=update.reason, status_at=update.timestamp)
        if update.quality:
            row.update(quality_score=update.quality, quality_at=update.timestamp)
        if update.category:
            row.update(category=update.category, category_at=update.timestamp)
        rows.append(row)
    return rows


def _templates_sync_queue(jobs: Sequence[_Job], unsynced: set[str]) -> None:
    """An update named a template no sync has listed yet: it is kept (the row has what the
    update said), and its account is synced after the commit for the rest (components), at
    most once per TEMPLATES_SYNC_ON_UPDATE_SECONDS however many such updates come."""
    accounts = {account: pk for job in jobs for account, pk in job.accounts.items() if account in unsynced}
    wanted = []
    for account, pk in accounts.items():
        try:
            due = cache.add(f"whatsbot:templates-sync:{account}", 1, settings.TEMPLATES_SYNC_ON_UPDATE_SECONDS)
        except Exception:  # Redis down: the delivery is stored; a sync too many does no harm
            due = True
        if due:
            wanted.append(pk)
    queueing.enqueue_on_commit(queueing.TEMPLATES_SYNC, wanted)


def _answered(m: InboundMessage) -> bool:
    """A customer's live message gets a turn; the business's own and past chats none."""
    return m.author == base.Author.CUSTOMER and not m.history


def _with_media(jobs: Sequence[_Job]) -> set[str]:
    """The provider ids of the messages that carry a file to fetch (any author, past chats too)."""
    return {
        m.provider_id
        for job in jobs
        for _channel, messages in job.by_channel
        for m in messages
        if m.type in MEDIA_TYPES and m.media.get("id")
    }


def _identities_move(cursor, jobs: Sequence[_Job]) -> None:
    """The jobs' identity changes (a customer's new number or BSUID), oldest first, queued
    before their messages find their customers: a message of the batch that names the old
    identity, or the new one, lands on the customer the change moved. Rare, so one statement
    each, in the same round trip."""
    changes = sorted((c for job in jobs for c in job.identity_changes), key=lambda c: c.timestamp)
    for change in changes:
        ingest_sql.identity_move(cursor, old=change.old, new=change.new)
        for job in jobs:
            for _channel, messages in job.by_channel:
                for m in messages:
                    if (change.old.user_id and m.customer.user_id == change.old.user_id) or (
                        change.old.phone and m.customer.phone == change.old.phone
                    ):
                        m.customer = change.new


def _rows_store(cursor, jobs: Sequence[_Job]) -> tuple[list[tuple], set[str]]:
    """The messages of every job, one statement per channel: (id, wamid, conversation id) of
    the new ones, and the wamids of those an edit or a deletion stored earlier names."""
    by_channel: dict[int, tuple[Channel, list[InboundMessage]]] = {}
    for job in jobs:
        for channel, messages in job.by_channel:
            by_channel.setdefault(channel.pk, (channel, []))[1].extend(messages)
    inserted: list[tuple] = []
    revised: set[str] = set()
    now = timezone.now()
    for channel, messages in by_channel.values():
        profiles: dict[Identity, dict] = {}
        for m in messages:
            at = m.timestamp or now
            row = profiles.setdefault(m.customer, _profile_row(m.customer, at, now))
            row["profile_name"] = m.profile_name or row["profile_name"]
            row["first_contact_at"] = min(row["first_contact_at"], at)
            row["last_contact_at"] = max(row["last_contact_at"], at)
        position = {identity: n for n, identity in enumerate(profiles)}
        rows = [
            {
                "customer": position[m.customer],
                **_written(m, now),
                "type": m.type,
                "text": m.text,
                "payload": m.payload,
                "media": m.media,
                "context_wamid": m.context_id,
                "referral": m.referral,
                "wamid": m.provider_id,
                "provider_timestamp": m.timestamp,
                "created_at": now,
            }
            for m in messages
        ]
        for pk, wamid, conversation, named in ingest_sql.thread_rows_store(
            cursor, channel_id=channel.pk, profiles=list(profiles.values()), messages=rows
        ):
            inserted.append((pk, wamid, conversation))
            if named:
                revised.add(wamid)
    return inserted, revised


def _written(m: InboundMessage, now) -> dict:
    """Who wrote a message and what is left to do with it: a customer's waits for its turn;
    the business's own (written in the WhatsApp Business app) was sent already; a past
    chat's is handled already."""
    if m.author == base.Author.BUSINESS_APP:
        at, status = m.timestamp or now, MessageStatus.SENT
        written = {"direction": Direction.OUTBOUND, "author": Author.STAFF, "sent_at": at, "handled_at": at}
    else:
        status, handled = MessageStatus.RECEIVED, now if m.history else None
        written = {"direction": Direction.INBOUND, "author": Author.CUSTOMER, "sent_at": None, "handled_at": handled}
    origin = Origin.HISTORY if m.history else Origin.BUSINESS_APP if m.author == base.Author.BUSINESS_APP else Origin.PRODUCT
    return {**written, "status": status, "status_rank": STATUS_RANK[status], "origin": origin}


def _profile_row(customer: Identity, at, now) -> dict:
    """A customer's profile as a message shows it; `key` is what a new one is keyed by."""
    return {
        **ingest_sql.identity_row(customer),
        "parent_user_id": customer.parent_user_id,
        "username": customer.username,
        "profile_name": "",
        "first_contact_at": at,
        "last_contact_at": at,
        "created_at": now,
    }


def _threads(jobs: Sequence[_Job], inserted: list[tuple]) -> list[dict]:
    """Each conversation's state after its new messages: the latest one's time and preview."""
    conversation_of = {wamid: conversation for _pk, wamid, conversation in inserted}
    per_conversation: dict[int, list[InboundMessage]] = defaultdict(list)
    for job in jobs:
        for _channel, messages in job.by_channel:
            for m in messages:
                if m.type not in REVISION_TYPES and m.provider_id in conversation_of:  # new; the same wamid twice counts once
                    per_conversation[conversation_of.pop(m.provider_id)].append(m)
    now = timezone.now()
    threads = []
    for conversation_id, items in per_conversation.items():
        live = [m for m in items if not m.history]
        customers = [m for m in live if m.author == base.Author.CUSTOMER]
        latest = max(live or items, key=lambda m: m.timestamp or now)
        # The owner wrote in the Business app: the customer waits only for what they wrote after.
        answered_at = max((m.timestamp or now for m in live if m.author != base.Author.CUSTOMER), default=None)
        waiting = [m.timestamp or now for m in customers if m.type not in SILENT_TYPES]
        waiting = [at for at in waiting if answered_at is None or at > answered_at]
        threads.append(
            {
                "id": conversation_id,
                "last_inbound_at": max(m.timestamp or now for m in customers) if customers else None,
                "last_message_at": latest.timestamp or now,
                "last_message_preview": message_preview(type=latest.type, text=latest.text),
                "unread_count": len(customers),
                "forward_only": not live,
                "handoff_reason": HANDOFF_BUSINESS_APP if len(customers) < len(live) else "",  # an echo came
                "waiting_from": min(waiting) if waiting else None,
                "answered": answered_at is not None,
                "changed_at": now,
            }
        )
    return threads


def _revised_wamids(jobs: Sequence[_Job], inserted: list[tuple], revised: set[str]) -> list[str]:
    """The messages that new edits and deletions name, and the new messages an edit or a
    deletion stored earlier names (`revised`: it came before its message): `revisions_apply`
    applies what each has. Most deliveries have neither, and no statement."""
    new = {wamid for _pk, wamid, _conversation in inserted}
    named = [
        m.context_id
        for job in jobs
        for _channel, messages in job.by_channel
        for m in messages
        if m.type in REVISION_TYPES and m.provider_id in new
    ]
    return named + sorted(revised)


def _previews_revise(revised: list[ingest_sql.Revised]) -> None:
    """After the commit: the list's preview of a conversation whose latest message was edited
    or deleted (`message_preview` is Python's, so this is a statement of its own)."""
    ingest_sql.previews_revise(
        [
            {"id": r.conversation_id, "message_id": r.id, "preview": message_preview(type=r.type, text=r.text, deleted=r.deleted)}
            for r in revised
        ]
    )


def _weight(job: _Job) -> int:
    return (
        sum(len(messages) for _, messages in job.by_channel) + len(job.statuses) + len(job.preferences) + len(job.contacts)
        + len(job.templates)
    )  # fmt: skip


_group_commit: GroupCommit[_Job, Ingested] = GroupCommit(_store, weight=_weight, max_weight=GROUP_COMMIT_MAX_ITEMS)
