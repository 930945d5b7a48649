"""The end of a turn: the burst marked handled with the bot's reply (or a hand-off), "sent",
the extraction's usage, and the leases of the work in flight.

`commit` is one transaction, sent in one round trip (pipeline): a first statement locks the
conversation row; the webhook updates that row in the transaction that stores a new customer
message, so once the lock is held every message stored before is visible to the second
statement, which has a snapshot of its own. The second statement writes only when every
message of the burst is still unhandled and, unless told otherwise, no newer customer text
waits (the newer message's turn answers the whole burst then): it marks the burst handled,
inserts the reply already claimed for its delivery, and moves the conversation (last
message, revision, and on a hand-off the owner). Nothing to undo, so no ROLLBACK is ever
sent: psycopg answers a ROLLBACK by forgetting the connection's prepared statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from .. import database
from ..models import (
    STATUS_RANK,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    Owner,
    StatusUpdate,
)
from . import TEXT_TYPES_SQL, literal, quote, row_values, table

USAGE_FIELDS = ("ai_model", "input_tokens", "cached_tokens", "output_tokens", "cost_usd")


@dataclass
class Commit:
    conversation_id: int
    burst_ids: list[int]  # by id; the last is the newest
    now: datetime
    check_newer: bool = True  # a newer customer text waiting makes the reply stale
    reply: Message | None = None  # unsaved; stored only in a bot-owned conversation
    preview: str = ""  # the conversation list's preview of the reply
    handoff_reason: str = ""  # the conversation goes to the human queue with the reply
    error: dict | None = None  # error_code/_title/_detail recorded on the burst's messages
    usage: tuple[int, dict] | None = None  # (message id, USAGE_FIELDS) of the burst's extraction


@dataclass
class Committed:
    done: bool  # the burst was unhandled (and nothing newer waited): it is handled now
    newer: bool  # a newer customer text waits
    bot_owned: bool  # the conversation was the bot's
    reply: Message | None  # the stored reply (with its id), when there was one to store


@lru_cache(maxsize=1)
def _commit_sql() -> tuple[str, str]:
    messages, conversations = table(Message), table(Conversation)
    reply_columns = [quote(f.column) for f in Message._meta.concrete_fields if not f.primary_key]
    lock = (
        f"SELECT c.id FROM {conversations} c, jsonb_to_record(%s::jsonb) AS p(conversation_id bigint) "
        "WHERE c.id = p.conversation_id FOR UPDATE OF c"
    )
    bot, human = literal(Owner.BOT), literal(Owner.HUMAN)
    usage_sets = ", ".join(f"{name} = CASE WHEN m.id = p.usage_id THEN p.usage_{name} ELSE m.{name} END" for name in USAGE_FIELDS)
    write = f"""
WITH p AS (
    SELECT * FROM jsonb_to_record(%s::jsonb) AS p(
        conversation_id bigint, ids bigint[], last_id bigint, check_newer boolean, now timestamptz, preview text,
        handoff_reason text, reply jsonb, error_code text, error_title text, error_detail text, usage_id bigint,
        usage_ai_model text, usage_input_tokens integer, usage_cached_tokens integer, usage_output_tokens integer,
        usage_cost_usd numeric)),
state AS (
    SELECT c.owner = {bot} AS bot_owned,
        (SELECT count(*) FROM {messages} m WHERE m.id = ANY(p.ids) AND m.handled_at IS NULL) = cardinality(p.ids) AS unhandled,
        EXISTS (SELECT 1 FROM {messages} n
                WHERE n.conversation_id = p.conversation_id AND n.direction = {literal(Direction.INBOUND)}
                  AND n.type IN {TEXT_TYPES_SQL} AND n.handled_at IS NULL AND n.id > p.last_id) AS newer
    FROM p JOIN {conversations} c ON c.id = p.conversation_id),
go AS (
    SELECT s.unhandled AND NOT (p.check_newer AND s.newer) AS done, s.newer, s.bot_owned,
           s.unhandled AND NOT (p.check_newer AND s.newer) AND s.bot_owned AND p.reply IS NOT NULL AS speaks
    FROM state s, p),
burst AS (
    UPDATE {messages} m SET handled_at = p.now, locked_until = NULL,
        error_code = coalesce(p.error_code, m.error_code), error_title = coalesce(p.error_title, m.error_title),
        error_detail = coalesce(p.error_detail, m.error_detail), {usage_sets}
    FROM p, go WHERE go.done AND m.id = ANY(p.ids)
    RETURNING m.id),
reply AS (
    INSERT INTO {messages} ({", ".join(reply_columns)})
    SELECT {", ".join("r." + c for c in reply_columns)} FROM p, go, jsonb_populate_record(NULL::{messages}, p.reply) r
    WHERE go.speaks
    RETURNING id),
moved AS (
    UPDATE {conversations} c SET last_message_at = p.now, last_message_preview = p.preview,
        revision = c.revision + 1, changed_at = p.now,
        owner = CASE WHEN p.handoff_reason <> '' THEN {human} ELSE c.owner END,
        handoff_reason = CASE WHEN p.handoff_reason <> '' THEN left(p.handoff_reason, 255) ELSE c.handoff_reason END,
        handoff_at = CASE WHEN p.handoff_reason <> '' THEN p.now ELSE c.handoff_at END
    FROM p, go WHERE c.id = p.conversation_id AND go.speaks)
SELECT go.done, go.newer, go.bot_owned, (SELECT id FROM reply), (SELECT count(*) FROM burst) FROM go"""
    return lock, write


async def commit(c: Commit) -> Committed:
    lock_sql, write_sql = _commit_sql()
    usage_id, usage = c.usage if c.usage else (None, {})
    doc = {
        "conversation_id": c.conversation_id,
        "ids": c.burst_ids,
        "last_id": c.burst_ids[-1],
        "check_newer": c.check_newer,
        "now": c.now,
        "preview": c.preview,
        "handoff_reason": c.handoff_reason,
        "reply": row_values(c.reply) if c.reply is not None else None,
        **(c.error or {}),
        "usage_id": usage_id,
        **{f"usage_{name}": usage.get(name) for name in USAGE_FIELDS},
    }
    lock_param = database.json_param({"conversation_id": c.conversation_id})
    write_param = database.json_param(doc)

    async def work(conn):
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            await conn.execute(lock_sql, [lock_param], prepare=True)
            cursor = await conn.execute(write_sql, [write_param], prepare=True)
            await conn.execute(b"COMMIT")
        return await cursor.fetchone()

    done, newer, bot_owned, reply_id, _marked = await database.statement(work)
    reply = None
    if reply_id is not None:
        reply = c.reply
        reply.pk = reply_id
        reply._state.adding, reply._state.db = False, "default"
    return Committed(done=done, newer=newer, bot_owned=bot_owned, reply=reply)


@lru_cache(maxsize=1)
def _mark_sent_sql() -> str:
    messages = table(Message)
    return f"""
WITH p AS (SELECT * FROM jsonb_to_record(%s::jsonb) AS p(message_id bigint, conversation_id bigint, wamid text, sent_at timestamptz)),
sent AS (
    UPDATE {messages} m SET wamid = p.wamid, status = {literal(MessageStatus.SENT)}, status_rank = {STATUS_RANK[MessageStatus.SENT]},
        sent_at = p.sent_at, locked_until = NULL, handled_at = p.sent_at
    FROM p WHERE m.id = p.message_id AND m.status = {literal(MessageStatus.PENDING)}
    RETURNING m.id),
moved AS (
    UPDATE {table(Conversation)} c SET revision = c.revision + 1, changed_at = p.sent_at
    FROM p WHERE c.id = p.conversation_id AND EXISTS (SELECT 1 FROM sent))
SELECT EXISTS (SELECT 1 FROM {table(StatusUpdate)} su, p WHERE su.wamid = p.wamid AND NOT su.applied)"""


async def mark_sent(*, message_id: int, conversation_id: int, wamid: str, sent_at: datetime) -> bool:
    """The pending message is sent as `wamid`, and its conversation's revision moves (one
    statement; a second run changes nothing). True when Meta reported statuses for the wamid
    before it was stored (to apply now)."""
    param = database.json_param({"message_id": message_id, "conversation_id": conversation_id, "wamid": wamid, "sent_at": sent_at})

    async def work(conn):
        cursor = await conn.execute(_mark_sent_sql(), [param], prepare=True)
        return (await cursor.fetchone())[0]

    return bool(await database.statement(work))


@lru_cache(maxsize=1)
def _usage_sql() -> str:
    definitions = "message_id bigint, ai_model text, input_tokens integer, cached_tokens integer, output_tokens integer, cost_usd numeric"
    sets = ", ".join(f"{name} = p.{name}" for name in USAGE_FIELDS)
    return f"UPDATE {table(Message)} m SET {sets} FROM jsonb_to_record(%s::jsonb) AS p({definitions}) WHERE m.id = p.message_id"


async def usage_set(*, message_id: int, usage: dict) -> None:
    """The model's usage (USAGE_FIELDS) on a message: the extraction's on the customer's."""
    param = database.json_param({"message_id": message_id, **{name: usage.get(name) for name in USAGE_FIELDS}})

    async def work(conn):
        await conn.execute(_usage_sql(), [param], prepare=True)

    await database.statement(work)


@lru_cache(maxsize=1)
def _renew_sql() -> str:
    return (
        f"UPDATE {table(Message)} m SET locked_until = p.locked_until "
        "FROM jsonb_to_record(%s::jsonb) AS p(ids bigint[], locked_until timestamptz) "
        "WHERE m.id = ANY(p.ids) AND m.locked_until IS NOT NULL AND m.handled_at IS NULL"
    )


async def leases_renew(*, ids: list[int], locked_until: datetime) -> None:
    """Move the leases of messages still being worked on (and not handled yet) forward."""
    param = database.json_param({"ids": sorted(ids), "locked_until": locked_until})

    async def work(conn):
        await conn.execute(_renew_sql(), [param], prepare=True)

    await database.statement(work)
