"""Storing what the customer sends, and the delivery statuses of what we sent."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from profiles.models import ClientProfile
from webhooks.meta import InboundMessage, StatusEvent

from ..db import json_default, insert_returning, thread_rows_store, update_from_values
from ..models import (
    STATUS_RANK,
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

PREVIEW_LENGTH = 160


def message_preview(*, type: str, text: str) -> str:
    text = " ".join(text.split())
    if type == "text":
        return text[:PREVIEW_LENGTH]
    label = f"[{type}]"
    return f"{label} {text}"[:PREVIEW_LENGTH] if text else label


PROFILE_UPSERT = {
    "profile_name": "CASE WHEN EXCLUDED.profile_name <> '' THEN EXCLUDED.profile_name ELSE T.profile_name END",
    "last_contact_at": "CASE WHEN T.last_contact_at IS NULL OR EXCLUDED.last_contact_at > T.last_contact_at "
    "THEN EXCLUDED.last_contact_at ELSE T.last_contact_at END",
}


def inbound_messages_store(*, channel: Channel, messages: Sequence[InboundMessage], cursor=None) -> list[int]:
    """Store a webhook's messages for one channel; return the ids of the ones that are new.
    See `inbound_rows_store`."""
    return [pk for pk, _ in inbound_rows_store(channel=channel, messages=messages, cursor=cursor)]


def inbound_rows_store(*, channel: Channel, messages: Sequence[InboundMessage], cursor=None) -> list[tuple[int, str]]:
    """Store messages for one channel; return `(id, wamid)` of the ones that are new, by id.

    Runs inside the caller's transaction. Profiles and conversations are upserted, and
    messages inserted under the unique `wamid`, so a duplicate delivery (Meta retries for
    days) inserts nothing and returns nothing. On PostgreSQL that is one statement for the
    whole batch plus one UPDATE for the threads' state, whatever the number of messages.
    `cursor`: a cursor of `conversations.db.pipelined_transaction()` (PostgreSQL), whose
    transaction the caller commits; the UPDATE is then queued, not waited for.
    """
    if not messages:
        return []
    now = timezone.now()

    profiles: dict[str, dict] = {}
    for m in messages:
        at = m.timestamp or now
        row = profiles.setdefault(
            m.wa_id, {"wa_id": m.wa_id, "profile_name": "", "first_contact_at": at, "last_contact_at": at, "created_at": now}
        )
        row["profile_name"] = m.profile_name or row["profile_name"]
        row["first_contact_at"] = min(row["first_contact_at"], at)
        row["last_contact_at"] = max(row["last_contact_at"], at)

    def message_row(m: InboundMessage) -> dict:
        return {
            "direction": Direction.INBOUND,
            "author": Author.CUSTOMER,
            "type": m.type,
            "text": m.text,
            "payload": m.payload,
            "media": m.media,
            "context_wamid": m.context_wamid,
            "referral": m.referral,
            "wamid": m.wamid,
            "provider_timestamp": m.timestamp,
            "status": MessageStatus.RECEIVED,
            "created_at": now,
        }

    if connection.vendor == "postgresql":
        inserted = thread_rows_store(
            profiles=list(profiles.values()),
            conversation={"channel": channel.pk, "created_at": now, "changed_at": now},
            messages=[{"wa_id": m.wa_id, **message_row(m)} for m in messages],
            profile_update=PROFILE_UPSERT,
            cursor=cursor,
        )
        conversation_of = {wamid: conversation_id for _, wamid, conversation_id in inserted}
    else:  # SQLite (the embedded default): the same, one statement per step
        profile_ids = dict(
            (wa_id, pk)
            for pk, wa_id in insert_returning(
                ClientProfile, list(profiles.values()), conflict=["wa_id"], update=PROFILE_UPSERT, returning=["id", "wa_id"]
            )
        )
        conversation_ids = dict(
            (profile_id, pk)
            for pk, profile_id in insert_returning(
                Conversation,
                [{"channel": channel.pk, "profile": pid, "created_at": now, "changed_at": now} for pid in profile_ids.values()],
                conflict=["channel", "profile"],
                # A no-op update, so that existing rows are returned too.
                update={"channel_id": "EXCLUDED.channel_id"},
                returning=["id", "profile"],
            )
        )
        rows = [{"conversation": conversation_ids[profile_ids[m.wa_id]], **message_row(m)} for m in messages]
        customer_of = {m.wamid: m.wa_id for m in messages}
        inserted = [
            (pk, wamid, conversation_ids[profile_ids[customer_of[wamid]]])
            for pk, wamid in insert_returning(Message, rows, conflict=["wamid"], returning=["id", "wamid"])
        ]
        conversation_of = {wamid: conversation_id for _, wamid, conversation_id in inserted}

    # Denormalised thread state for the console and the 24-hour window.
    per_conversation: dict[int, list[InboundMessage]] = defaultdict(list)
    for m in messages:
        if m.wamid in conversation_of:
            per_conversation[conversation_of.pop(m.wamid)].append(m)  # the same wamid twice in one body counts once
    threads = []
    for conversation_id, items in per_conversation.items():
        latest = max(items, key=lambda m: m.timestamp or now)
        at = latest.timestamp or now
        threads.append(
            {
                "id": conversation_id,
                "last_inbound_at": at,
                "last_message_preview": message_preview(type=latest.type, text=latest.text),
                "unread_count": len(items),
                "changed_at": now,
            }
        )
    if connection.vendor == "postgresql":
        update_from_values(
            Conversation,
            threads,
            fields=["last_inbound_at", "last_message_preview", "unread_count", "changed_at"],
            set={
                "last_inbound_at": "v.last_inbound_at",
                "last_message_at": "v.last_inbound_at",
                "last_message_preview": "v.last_message_preview",
                "unread_count": "T.unread_count + v.unread_count",
                "status": f"'{ConversationStatus.OPEN.value}'",
                "revision": "T.revision + 1",
                "changed_at": "v.changed_at",
            },
            cursor=cursor,
        )
    else:
        for thread in threads:
            Conversation.objects.filter(pk=thread["id"]).update(
                last_inbound_at=thread["last_inbound_at"],
                last_message_at=thread["last_inbound_at"],
                last_message_preview=thread["last_message_preview"],
                unread_count=F("unread_count") + thread["unread_count"],
                status=ConversationStatus.OPEN,
                revision=F("revision") + 1,
                changed_at=now,
            )
    return [(pk, wamid) for pk, wamid, _ in inserted]


def statuses_apply(*, statuses: Sequence[StatusEvent], cursor=None) -> int | None:
    """Record delivery statuses and move outbound messages forward (never backwards).

    Every status is stored (history, and for a send that has not stored its wamid yet);
    then each message moves to the highest status it has not reached, in the order Meta
    stamped them. Returns how many messages moved. On PostgreSQL that is two statements
    for the whole batch; `cursor`: a cursor of `pipelined_transaction()`, where both are
    queued, not waited for (None is returned).
    """
    if not statuses:
        return 0
    rows = [
        {
            "wamid": s.wamid,
            "status": s.status if s.status in MessageStatus.values else MessageStatus.FAILED,
            "timestamp": s.timestamp,
            "recipient_id": s.recipient_id,
            "errors": s.errors,
            "payload": s.payload,
        }
        for s in statuses
    ]
    wamids = sorted({s.wamid for s in statuses})
    if connection.vendor == "postgresql":
        status_rows_insert(rows, cursor=cursor)
        return status_updates_apply(wamids=wamids, cursor=cursor)
    StatusUpdate.objects.bulk_create([StatusUpdate(**row) for row in rows])
    return sum(status_updates_apply_for(wamid=wamid) for wamid in wamids)


def status_updates_apply_for(*, wamid: str) -> int:
    """Apply every stored, unapplied status for `wamid` to its message, in order; 1 if the
    message moved."""
    if connection.vendor == "postgresql":
        return status_updates_apply(wamids=[wamid])
    pending = list(StatusUpdate.objects.filter(wamid=wamid, applied=False).order_by("timestamp", "id"))
    if not pending or not Message.objects.filter(wamid=wamid).exists():
        return 0  # the send has not stored its wamid yet: applied when it does
    changed = 0
    for update in pending:
        changed += _status_move(update)
    StatusUpdate.objects.filter(pk__in=[u.pk for u in pending]).update(applied=True)
    if changed:
        Conversation.objects.filter(messages__wamid=wamid).update(revision=F("revision") + 1, changed_at=timezone.now())
    return 1 if changed else 0


# Statuses whose message is still unknown this long after they came are not ours to apply
# (a message sent from the WhatsApp Business app or another integration on the same number).
STATUS_SWEEP_WITHIN = timezone.timedelta(days=1)


def statuses_sweep(*, limit: int = 500) -> int:
    """Apply the statuses stored before their message's wamid, which the send missed.

    A send stores the wamid Meta gave it and then applies the statuses already stored for
    it. A status whose transaction was still open at that moment is seen by neither side
    (Meta can report `sent` within milliseconds of answering the send). The beat sweeper
    applies those once they are INBOUND_SWEEP_AFTER_SECONDS old. Returns messages moved.
    """
    now = timezone.now()
    older_than = now - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
    wamids = list(
        StatusUpdate.objects.filter(applied=False, created_at__lt=older_than, created_at__gt=now - STATUS_SWEEP_WITHIN)
        .filter(Exists(Message.objects.filter(wamid=OuterRef("wamid"))))
        .values_list("wamid", flat=True)
        .distinct()[:limit]
    )
    if not wamids:
        return 0
    logger.info("sweeper: applying the statuses of %d message(s) stored before their wamid", len(wamids))
    if connection.vendor == "postgresql":
        return status_updates_apply(wamids=wamids)
    return sum(status_updates_apply_for(wamid=wamid) for wamid in wamids)


def status_rows_insert(rows: Sequence[dict], *, cursor=None) -> None:
    """INSERT the StatusUpdate rows in one statement (PostgreSQL), the rows as one JSON
    parameter. Queued on a pipelined `cursor`."""
    sql = _status_insert_sql()
    params = [timezone.now(), json.dumps(rows, default=json_default, ensure_ascii=False)]
    if cursor is not None:
        cursor.execute(sql, params, prepare=True)
        return
    with connection.cursor() as django_cursor:
        django_cursor.execute(sql, params)


def status_updates_apply(*, wamids: Sequence[str], cursor=None) -> int | None:
    """`status_updates_apply_for` for many wamids in ONE statement (PostgreSQL).

    The same rules as statement by statement: the unapplied statuses of a wamid whose
    message exists are applied in (timestamp, id) order, and each one moves the message
    only past the rank reached so far; a message ends at the highest status that moved it,
    with the `<status>_at` time of each status that did; a failed one records Meta's error.
    They are all marked applied; and the conversation of a message that moved gets a new
    revision (the console's polls see it). Statuses whose message is not stored yet stay
    unapplied, for the send to apply. On a pipelined `cursor` it is queued (None returned).
    """
    if not wamids:
        return 0
    params = [json.dumps(list(wamids)), timezone.now()]  # JSON: a Python list adapted as an array costs far more
    if cursor is not None:
        cursor.execute(_status_apply_sql(), params, prepare=True)
        return None
    with connection.cursor() as django_cursor:
        django_cursor.execute(_status_apply_sql(), params)
        return django_cursor.fetchone()[0]


@lru_cache(maxsize=1)
def _status_insert_sql() -> str:
    table = StatusUpdate._meta.db_table
    return (
        f"INSERT INTO {table} (wamid, status, timestamp, recipient_id, errors, payload, applied, created_at) "
        "SELECT v.wamid, v.status, v.timestamp, v.recipient_id, coalesce(v.errors, '[]'::jsonb), "
        "coalesce(v.payload, '{}'::jsonb), false, %s::timestamptz "
        "FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (wamid text, status text, timestamp timestamptz, "
        "recipient_id text, errors jsonb, payload jsonb)) WITH ORDINALITY "
        "AS v(wamid, status, timestamp, recipient_id, errors, payload, position) ORDER BY v.position"
    )


@lru_cache(maxsize=1)
def _status_apply_sql() -> str:
    statuses, messages, conversations = StatusUpdate._meta.db_table, Message._meta.db_table, Conversation._meta.db_table
    ranks = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items() if rank > 0)
    moved_at = ", ".join(
        f"{status}_at = coalesce(f.{status}_at, m.{status}_at)" for status, rank in STATUS_RANK.items() if rank > 0
    )
    final_at = ", ".join(
        f"max(p.timestamp) FILTER (WHERE p.status = '{status}') AS {status}_at" for status, rank in STATUS_RANK.items() if rank > 0
    )
    failed = MessageStatus.FAILED.value
    return f"""
WITH target AS (
    -- The messages, locked in id order (as every path that locks several does: no deadlock).
    SELECT m.id, m.wamid, m.status_rank FROM {messages} m
    WHERE m.wamid IN (SELECT jsonb_array_elements_text(%s::jsonb)) ORDER BY m.id FOR UPDATE
),
pending AS (
    -- Per message: an index scan of its unapplied statuses (OFFSET 0 keeps the planner from
    -- turning the LATERAL into a hash join over the whole table).
    SELECT su.id, su.wamid, su.status, su.timestamp, su.errors, r.rank, t.status_rank AS message_rank,
           max(r.rank) OVER (PARTITION BY su.wamid ORDER BY su.timestamp, su.id
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS rank_before
    FROM target t
    CROSS JOIN LATERAL (SELECT * FROM {statuses} s WHERE s.wamid = t.wamid AND NOT s.applied OFFSET 0) su
    CROSS JOIN LATERAL (SELECT CASE su.status {ranks} END AS rank) r
),
marked AS (
    UPDATE {statuses} su SET applied = true WHERE su.id = ANY(ARRAY(SELECT id FROM pending))
),
final AS (
    SELECT p.wamid, max(p.rank) AS rank, (array_agg(p.status ORDER BY p.rank DESC))[1] AS status,
           {final_at}, (array_agg(p.errors) FILTER (WHERE p.status = '{failed}'))[1] -> 0 AS error
    FROM pending p
    WHERE p.rank > greatest(p.message_rank, coalesce(p.rank_before, 0))
    GROUP BY p.wamid
),
moved AS (
    UPDATE {messages} m SET status = f.status, status_rank = f.rank, {moved_at},
        error_code = CASE WHEN f.status = '{failed}' THEN left(coalesce(f.error ->> 'code', ''), 32) ELSE m.error_code END,
        error_title = CASE WHEN f.status = '{failed}' THEN left(coalesce(f.error ->> 'title', ''), 255) ELSE m.error_title END,
        error_detail = CASE WHEN f.status = '{failed}' THEN coalesce(nullif(f.error -> 'error_data' ->> 'details', ''),
                                                                   nullif(f.error ->> 'message', ''), '')
                            ELSE m.error_detail END
    FROM final f WHERE m.wamid = f.wamid AND m.status_rank < f.rank
    RETURNING m.conversation_id
),
bumped AS (
    UPDATE {conversations} c SET revision = c.revision + 1, changed_at = %s::timestamptz
    FROM (SELECT id FROM {conversations} WHERE id IN (SELECT conversation_id FROM moved) ORDER BY id FOR UPDATE) l
    WHERE c.id = l.id
)
SELECT count(*) FROM moved"""


def _status_move(update: StatusUpdate) -> int:
    rank = STATUS_RANK.get(update.status)
    if rank is None:
        logger.info("ignoring unknown status %r for %s", update.status, update.wamid)
        return 0
    values: dict = {"status": update.status, "status_rank": rank, f"{update.status}_at": update.timestamp}
    if update.status == MessageStatus.FAILED:
        error = (update.errors or [{}])[0]
        values.update(
            error_code=str(error.get("code") or ""),
            error_title=str(error.get("title") or "")[:255],
            error_detail=str((error.get("error_data") or {}).get("details") or error.get("message") or ""),
        )
    return Message.objects.filter(Q(wamid=update.wamid) & Q(status_rank__lt=rank)).update(**values)
