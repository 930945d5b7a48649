"""Delivery statuses of the messages we sent: stored, and applied to their messages.

Every status is stored (the message's history, and for a send that has not stored its
wamid yet); each message then moves to the highest status it has not reached, in the order
the provider stamped them, never backwards (a late `delivered` after `read` changes
nothing); a failed one records the provider's error. The pricing a status carries goes on
the message too, the latest the provider stamped winning, whether or not the status moves
it. Statuses whose message is not stored yet stay unapplied: the send applies them when it
stores the wamid, or the sweeper does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import psycopg
from django.utils import timezone

from integrations.base import StatusEvent

from ..database import json_text
from ..models import STATUS_RANK, Conversation, Message, MessageStatus, StatusUpdate
from . import pipelined_transaction, table


def statuses_store(cursor: psycopg.Cursor, statuses: Sequence[StatusEvent]) -> None:
    """Store the statuses and apply them: two statements for the whole batch, queued."""
    if not statuses:
        return
    rows = [
        {
            "wamid": s.provider_id,
            "status": s.status if s.status in MessageStatus.values else MessageStatus.FAILED,
            "timestamp": s.timestamp,
            "recipient_id": s.recipient.phone or s.recipient.user_id,
            "errors": s.errors,
            "payload": s.payload,
            "pricing": s.pricing,
        }
        for s in statuses
    ]
    cursor.execute(_insert_sql(), [timezone.now(), json_text(rows)], prepare=True)
    statuses_apply(cursor, sorted({s.provider_id for s in statuses}))


def statuses_apply(cursor: psycopg.Cursor, wamids: Sequence[str]) -> None:
    """Apply every stored, unapplied status of these wamids whose message exists: one
    statement, queued; its row (read after the commit) is how many messages changed (status
    or pricing). The conversation of a message that changed gets a new revision (the
    console's polls see it)."""
    if wamids:
        cursor.execute(_apply_sql(), [json_text({"wamids": list(wamids), "now": timezone.now()})], prepare=True)


def statuses_apply_now(wamids: Sequence[str]) -> None:
    """`statuses_apply` in a transaction of its own, on Django's connection (a send that
    found statuses stored before its wamid, the sweeper)."""
    with pipelined_transaction() as cursor:
        statuses_apply(cursor, wamids)


@lru_cache(maxsize=1)
def _insert_sql() -> str:
    return (
        f"INSERT INTO {table(StatusUpdate)} (wamid, status, timestamp, recipient_id, errors, payload, pricing, applied, created_at) "
        "SELECT v.wamid, v.status, v.timestamp, v.recipient_id, coalesce(v.errors, '[]'::jsonb), "
        "coalesce(v.payload, '{}'::jsonb), coalesce(v.pricing, '{}'::jsonb), false, %s::timestamptz "
        "FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (wamid text, status text, timestamp timestamptz, "
        "recipient_id text, errors jsonb, payload jsonb, pricing jsonb)) WITH ORDINALITY "
        "AS v(wamid, status, timestamp, recipient_id, errors, payload, pricing, position) ORDER BY v.position"
    )


@lru_cache(maxsize=1)
def _apply_sql() -> str:
    statuses, messages, conversations = table(StatusUpdate), table(Message), table(Conversation)
    ranks = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items() if rank > 0)
    moved_at = ", ".join(
        f"{status}_at = coalesce(f.{status}_at, m.{status}_at)" for status, rank in STATUS_RANK.items() if rank > 0
    )
    final_at = ", ".join(
        f"max(p.timestamp) FILTER (WHERE p.moves AND p.status = '{status}') AS {status}_at"
        for status, rank in STATUS_RANK.items()
        if rank > 0
    )
    failed = MessageStatus.FAILED.value
    return f"""
WITH params AS (SELECT %s::jsonb AS doc),
target AS (
    -- The messages, locked in id order (as every path that locks several does: no deadlock).
    SELECT m.id, m.wamid, m.status_rank FROM {messages} m
    WHERE m.wamid IN (SELECT jsonb_array_elements_text(doc -> 'wamids') FROM params) ORDER BY m.id FOR UPDATE
),
pending AS (
    -- Per message: an index scan of its unapplied statuses (OFFSET 0 keeps the planner from
    -- turning the LATERAL into a hash join over the whole table).
    SELECT su.id, su.wamid, su.status, su.timestamp, su.errors, su.pricing, r.rank, t.status_rank AS message_rank,
           max(r.rank) OVER (PARTITION BY su.wamid ORDER BY su.timestamp, su.id
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS rank_before
    FROM target t
    CROSS JOIN LATERAL (SELECT * FROM {statuses} s WHERE s.wamid = t.wamid AND NOT s.applied OFFSET 0) su
    CROSS JOIN LATERAL (SELECT CASE su.status {ranks} END AS rank) r
),
marked AS (
    UPDATE {statuses} su SET applied = true WHERE su.id = ANY(ARRAY(SELECT id FROM pending))
),
ranked AS (
    SELECT p.*, p.rank > greatest(p.message_rank, coalesce(p.rank_before, 0)) AS moves FROM pending p
),
final AS (
    -- Per message: where its statuses move it (`rank` NULL: nowhere), and the latest pricing.
    SELECT p.wamid, max(p.rank) FILTER (WHERE p.moves) AS rank,
           (array_agg(p.status ORDER BY p.rank DESC) FILTER (WHERE p.moves))[1] AS status,
           {final_at}, (array_agg(p.errors) FILTER (WHERE p.moves AND p.status = '{failed}'))[1] -> 0 AS error,
           (array_agg(p.pricing ORDER BY p.timestamp DESC, p.id DESC) FILTER (WHERE p.pricing <> '{{}}'))[1] AS pricing,
           max(p.timestamp) FILTER (WHERE p.pricing <> '{{}}') AS pricing_at
    FROM ranked p
    GROUP BY p.wamid
),
moved AS (
    UPDATE {messages} m SET
        status = CASE WHEN f.rank > m.status_rank THEN f.status ELSE m.status END,
        status_rank = greatest(m.status_rank, f.rank), {moved_at},
        error_code = CASE WHEN f.status = '{failed}' THEN left(coalesce(f.error ->> 'code', ''), 32) ELSE m.error_code END,
        error_title = CASE WHEN f.status = '{failed}' THEN left(coalesce(f.error ->> 'title', ''), 255) ELSE m.error_title END,
        error_detail = CASE WHEN f.status = '{failed}' THEN coalesce(nullif(f.error -> 'error_data' ->> 'details', ''),
                                                                   nullif(f.error ->> 'message', ''), '')
                            ELSE m.error_detail END,
        pricing = CASE WHEN f.pricing_at >= coalesce(m.pricing_at, '-infinity') THEN f.pricing ELSE m.pricing END,
        pricing_at = greatest(m.pricing_at, f.pricing_at)
    FROM final f
    WHERE m.wamid = f.wamid AND (m.status_rank < f.rank OR f.pricing_at >= coalesce(m.pricing_at, '-infinity'))
    RETURNING m.conversation_id
),
bumped AS (
    UPDATE {conversations} c SET revision = c.revision + 1, changed_at = (SELECT (doc ->> 'now')::timestamptz FROM params)
    FROM (SELECT id FROM {conversations} WHERE id IN (SELECT conversation_id FROM moved) ORDER BY id FOR UPDATE) l
    WHERE c.id = l.id
)
SELECT count(*) FROM moved"""
