"""The end of a turn: the burst marked handled with the bot's reply (or a hand-off), "sent",
the extraction's usage, a voice note's transcript, and the leases of the work in flight.

`commit` is one transaction, sent in one round trip (pipeline): a first statement locks the
conversation row; the webhook updates that row in the transaction that stores a new customer
message, so once the lock is held every message stored before is visible to the second
statement, which has a snapshot of its own. The second statement writes only when every
message of the burst is still unhandled and, unless told otherwise, no newer customer text
waits (the newer message's turn answers the whole burst then): it marks the burst handled,
inserts the reply already claimed for its delivery, and moves the conversation (last
message, revision, and on a hand-off the owner and, in business hours, the assignee:
`sql.assign`, whose advisory lock a hand-off takes between the two statements). Nothing to
undo, so no ROLLBACK is ever sent: psycopg answers a ROLLBACK by forgetting the connection's
prepared statements.
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
from . import assign as assign_sql
from . import backend, literal, quote, row_values, table, words_sql
from .assign import assignee_pick_sql

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
    assign: bool = False  # and to the least busy available agent (`sql.assign`), when a hand-off
    error: dict | None = None  # error_code/_title/_detail recorded on the burst's messages
    usage: tuple[int, dict] | None = None  # (message id, USAGE_FIELDS) of the burst's extraction
    images: bool = True  # the model sees images: a stored one is words that make a reply stale (`words_sql`)
    synced: bool = False  # the model was given the burst: the OpenAI conversation's watermark moves to its newest


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
    lock = f"SELECT id FROM {conversations} WHERE id = %(conversation_id)s::bigint FOR UPDATE"
    bot, human = literal(Owner.BOT), literal(Owner.HUMAN)
    field = Message._meta.get_field
    usage_sets = ", ".join(
        f"{name} = CASE WHEN m.id = %(usage_id)s::bigint THEN %(usage_{name})s::{field(name).cast_db_type(backend())} ELSE m.{name} END"
        for name in USAGE_FIELDS
    )
    handoff = "%(handoff_reason)s::text <> ''"
    write = f"""
WITH state AS MATERIALIZED (
    SELECT c.owner = {bot} AS bot_owned,
        (SELECT count(*) FROM {messages} m WHERE m.id = ANY(%(ids)s::bigint[]) AND m.handled_at IS NULL)
            = cardinality(%(ids)s::bigint[]) AS unhandled,
        EXISTS (SELECT 1 FROM {messages} n
                WHERE n.conversation_id = %(conversation_id)s::bigint AND n.direction = {literal(Direction.INBOUND)}
                  AND n.handled_at IS NULL AND n.id > %(last_id)s::bigint AND {words_sql("n")}) AS newer
    FROM {conversations} c WHERE c.id = %(conversation_id)s::bigint),
go AS MATERIALIZED (
    SELECT unhandled AND NOT (%(check_newer)s::boolean AND newer) AS done, newer, bot_owned FROM state),
burst AS (
    UPDATE {messages} m SET handled_at = %(now)s::timestamptz, locked_until = NULL,
        error_code = coalesce(%(error_code)s::varchar, m.error_code), error_title = coalesce(%(error_title)s::varchar, m.error_title),
        error_detail = coalesce(%(error_detail)s::text, m.error_detail), {usage_sets}
    FROM go WHERE go.done AND m.id = ANY(%(ids)s::bigint[])),
reply AS (
    INSERT INTO {messages} ({", ".join(reply_columns)})
    SELECT {", ".join("r." + c for c in reply_columns)} FROM go, jsonb_populate_record(NULL::{messages}, %(reply)s::jsonb) r
    WHERE go.done AND go.bot_owned AND %(reply)s::jsonb IS NOT NULL
    RETURNING id),
moved AS (
    UPDATE {conversations} c SET last_message_at = %(now)s::timestamptz, last_message_preview = %(preview)s::varchar,
        revision = c.revision + 1, changed_at = %(now)s::timestamptz,
        owner = CASE WHEN {handoff} THEN {human} ELSE c.owner END,
        handoff_reason = CASE WHEN {handoff} THEN left(%(handoff_reason)s::text, 255) ELSE c.handoff_reason END,
        handoff_at = CASE WHEN {handoff} THEN %(now)s::timestamptz ELSE c.handoff_at END,
        openai_synced_message_id = CASE WHEN %(synced)s::boolean
            THEN greatest(c.openai_synced_message_id, %(last_id)s::bigint) ELSE c.openai_synced_message_id END,
        assigned_to_id = CASE WHEN {handoff} AND %(assign)s::boolean THEN {assignee_pick_sql()} ELSE c.assigned_to_id END
    FROM go WHERE c.id = %(conversation_id)s::bigint AND go.done AND go.bot_owned AND %(reply)s::jsonb IS NOT NULL)
SELECT go.done, go.newer, go.bot_owned, (SELECT id FROM reply) FROM go"""
    return lock, write


async def commit(c: Commit) -> Committed:
    lock_sql, write_sql = _commit_sql()
    usage_id, usage = c.usage if c.usage else (None, {})
    error = c.error or {}
    lock = database.params(conversation_id=c.conversation_id)
    write = database.params(
        conversation_id=c.conversation_id, ids=c.burst_ids, last_id=c.burst_ids[-1], check_newer=c.check_newer, now=c.now,
        images=c.images, synced=c.synced,
        preview=c.preview, handoff_reason=c.handoff_reason, assign=bool(c.handoff_reason and c.assign),
        reply=row_values(c.reply) if c.reply is not None else None,
        error_code=error.get("error_code"), error_title=error.get("error_title"), error_detail=error.get("error_detail"),
        usage_id=usage_id, **{f"usage_{name}": usage.get(name) for name in USAGE_FIELDS},
    )  # fmt: skip

    async def work(conn):
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            await conn.execute(lock_sql, lock, prepare=True)
            if c.handoff_reason and c.assign:
                # After the row lock, as the sweeper takes them: see `sql.assign`.
                await conn.execute(assign_sql.LOCK_SQL, prepare=True)
            cursor = await conn.execute(write_sql, write, prepare=True)
            await conn.execute(b"COMMIT")
        return await cursor.fetchone()

    done, newer, bot_owned, reply_id = await database.statement(work)
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
WITH sent AS (
    UPDATE {messages} m SET wamid = %(wamid)s::varchar, status = {literal(MessageStatus.SENT)},
        status_rank = {STATUS_RANK[MessageStatus.SENT]}, sent_at = %(sent_at)s::timestamptz, locked_until = NULL,
        handled_at = %(sent_at)s::timestamptz
    WHERE m.id = %(message_id)s::bigint AND m.status = {literal(MessageStatus.PENDING)}
    RETURNING m.id),
moved AS (
    UPDATE {table(Conversation)} c SET revision = c.revision + 1, changed_at = %(sent_at)s::timestamptz
    WHERE c.id = %(conversation_id)s::bigint AND EXISTS (SELECT 1 FROM sent))
SELECT EXISTS (SELECT 1 FROM {table(StatusUpdate)} su WHERE su.wamid = %(wamid)s::varchar AND NOT su.applied)"""


async def mark_sent(*, message_id: int, conversation_id: int, wamid: str, sent_at: datetime) -> bool:
    """The pending message is sent as `wamid`, and its conversation's revision moves (one
    statement; a second run changes nothing). True when Meta reported statuses for the wamid
    before it was stored (to apply now)."""
    params = database.params(message_id=message_id, conversation_id=conversation_id, wamid=wamid, sent_at=sent_at)

    async def work(conn):
        cursor = await conn.execute(_mark_sent_sql(), params, prepare=True)
        return (await cursor.fetchone())[0]

    return bool(await database.statement(work))


@lru_cache(maxsize=1)
def _usage_sql() -> str:
    field = Message._meta.get_field
    sets = ", ".join(f"{name} = %({name})s::{field(name).cast_db_type(backend())}" for name in USAGE_FIELDS)
    return f"UPDATE {table(Message)} SET {sets} WHERE id = %(message_id)s::bigint"


async def usage_set(*, message_id: int, usage: dict) -> None:
    """The model's usage (USAGE_FIELDS) on a message: the extraction's on the customer's."""
    params = database.params(message_id=message_id, **{name: usage.get(name) for name in USAGE_FIELDS})

    async def work(conn):
        await conn.execute(_usage_sql(), params, prepare=True)

    await database.statement(work)


@lru_cache(maxsize=1)
def _transcript_sql() -> str:
    return f"""
WITH heard AS (
    UPDATE {table(Message)} m SET transcript = %(transcript)s::text WHERE m.id = %(message_id)s::bigint RETURNING m.conversation_id)
UPDATE {table(Conversation)} c SET revision = c.revision + 1, changed_at = %(now)s::timestamptz
FROM heard WHERE c.id = heard.conversation_id"""


async def transcript_set(*, message_id: int, transcript: str, now: datetime) -> None:
    """A voice note's words on its message, and its conversation's revision moved so the
    console shows them (one statement)."""
    params = database.params(message_id=message_id, transcript=transcript, now=now)

    async def work(conn):
        await conn.execute(_transcript_sql(), params, prepare=True)

    await database.statement(work)


@lru_cache(maxsize=1)
def _renew_sql() -> str:
    return (
        f"UPDATE {table(Message)} SET locked_until = %(locked_until)s::timestamptz "
        "WHERE id = ANY(%(ids)s::bigint[]) AND locked_until IS NOT NULL AND handled_at IS NULL"
    )


async def leases_renew(*, ids: list[int], locked_until: datetime) -> None:
    """Move the leases of messages still being worked on (and not handled yet) forward."""
    params = database.params(ids=sorted(ids), locked_until=locked_until)

    async def work(conn):
        await conn.execute(_renew_sql(), params, prepare=True)

    await database.statement(work)
