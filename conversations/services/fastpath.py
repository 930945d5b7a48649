"""Prepared SQL for the worker's hot path on PostgreSQL (the ORM does the same elsewhere).

A customer text costs the worker a handful of statements; built by the ORM, each costs
more Python than PostgreSQL spends running it. Here the common ones are written once, sent
with server-side binding and prepared once per connection (generic plans, as the webhook's:
see `conversations.db`), and folded together where the database allows:

- `inbound_claim_load`: the claim, the message with its conversation, channel and profile,
  and the burst of unanswered texts it belongs to: one statement instead of three;
- `reply_commit`: the bot's reply in a bot-owned conversation (with the extraction's usage
  when it is ready): two statements in one pipelined transaction (two round trips) instead
  of five;
- `message_mark_sent` (with the look-up of statuses reported early), `message_usage_set`:
  one prepared statement each.

Callers fall back to the ORM when `enabled()` is False (SQLite: `make run`'s default) or
when a function says the case is not its own. The rules are the ORM path's (same
conditions, same locks, same outcomes); only the way they reach the database differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone

from profiles.models import ClientProfile

from ..db import pipelined_transaction, prepared_statements_allow
from ..models import STATUS_RANK, TEXT_TYPES, Channel, Conversation, Direction, Message, MessageStatus, Owner, StatusUpdate

# Big columns the handling of an inbound message never reads (deferred: read on access).
_MESSAGE_DEFERRED = ("payload", "media", "referral")


def enabled() -> bool:
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


@lru_cache(maxsize=1)
def _backend() -> object:
    """A DatabaseWrapper that never connects, for everything here that builds statements
    and rows (quoting, value adaptation, converters), from any thread or loop task;
    `connections[...]` only where a statement runs on Django's own connection. On the
    event loop each task would get a wrapper of its own from `connections`: a dozen
    objects in reference cycles per text for the garbage collector to find."""
    return connections.create_connection(DEFAULT_DB_ALIAS)


def _literal(value: str) -> str:
    # Only for the code's own constants (choices), never for data.
    assert "'" not in value and "\\" not in value
    return f"'{value}'"


_TEXT_TYPES_SQL = "(" + ", ".join(_literal(t) for t in TEXT_TYPES) + ")"


def _cursor(db):
    """A server-binding cursor on Django's own connection, allowed to prepare."""
    db.ensure_connection()
    prepared_statements_allow(db.connection)
    return psycopg.Cursor(db.connection)


# --- rows to model instances -----------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    model: type[Model]
    names: tuple[str, ...]  # attnames, in select order
    sql: str  # "alias"."column", …
    converters: tuple  # (position, converter) for the fields that need one (JSON)


@lru_cache(maxsize=None)
def _columns(model: type[Model], alias: str, without: tuple[str, ...] = ()) -> _Columns:
    db = _backend()
    qn = db.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if f.name not in without]
    converters = tuple(
        (i, converter) for i, f in enumerate(fields) for converter in f.get_db_converters(db) if converter is not None
    )
    return _Columns(
        model=model,
        names=tuple(f.attname for f in fields),
        sql=", ".join(f"{alias}.{qn(f.column)}" for f in fields),
        converters=converters,
    )


def _instance(columns: _Columns, values: list):
    db = _backend()
    for i, converter in columns.converters:
        values[i] = converter(values[i], None, db)
    return columns.model.from_db(DEFAULT_DB_ALIAS, columns.names, values)


# --- claim and load ------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _claim_load_sql(claim: bool = True) -> tuple[str, _Columns, _Columns, _Columns, _Columns]:
    qn = _backend().ops.quote_name
    message = _columns(Message, "m", _MESSAGE_DEFERRED)
    returning = _columns(Message, "claimed", _MESSAGE_DEFERRED)  # same columns, for RETURNING
    conversation, channel, profile = _columns(Conversation, "c"), _columns(Channel, "ch"), _columns(ClientProfile, "p")
    table = qn(Message._meta.db_table)
    if claim:
        m = f"""
    UPDATE {table} AS claimed SET locked_until = $1
    WHERE claimed.id = $2 AND claimed.direction = {_literal(Direction.INBOUND)} AND claimed.handled_at IS NULL
      AND (claimed.locked_until IS NULL OR claimed.locked_until <= $3)
    RETURNING {returning.sql}"""
    else:  # the same rows, read only (the debounced reply's task: its message was claimed before)
        m = f"SELECT {returning.sql} FROM {table} AS claimed WHERE claimed.id = $2"
    sql = f"""
WITH m AS ({m})
SELECT {message.sql}, {conversation.sql}, {channel.sql}, {profile.sql},
    (SELECT json_agg(json_build_array(b.id, b.type, b.text) ORDER BY b.id) FROM {table} b
     WHERE b.conversation_id = m.conversation_id AND b.direction = {_literal(Direction.INBOUND)}
       AND b.type IN {_TEXT_TYPES_SQL} AND b.handled_at IS NULL)
FROM m
JOIN {qn(Conversation._meta.db_table)} c ON c.id = m.conversation_id
JOIN {qn(Channel._meta.db_table)} ch ON ch.id = c.channel_id
JOIN {qn(ClientProfile._meta.db_table)} p ON p.id = c.profile_id"""
    # psycopg wants %s placeholders; numbered ones keep the statement readable above.
    for n in (3, 2, 1):
        sql = sql.replace(f"${n}", f"%({n})s")
    return sql, message, conversation, channel, profile


@dataclass
class Claimed:
    message: Message  # with its conversation, channel and profile loaded
    burst: list[Message]  # every unanswered customer text of the conversation, by id (this one included)


def inbound_claim_load(*, message_id: int, lease) -> Claimed | None:
    """Claim an unhandled inbound message (a conditional update on its lease) and read
    it with everything its handling needs, in one statement. None: not claimable (handled,
    or another worker holds it)."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.wrap_database_errors:
        cursor = _cursor(db)
        cursor.execute(_claim_load_sql()[0], _claim_params(message_id, lease), prepare=True)
        return _claimed(cursor.fetchone())


async def inbound_claim_load_async(conn, *, message_id: int, lease) -> Claimed | None:
    """`inbound_claim_load` on an async psycopg connection (`conversations.eventloop`)."""
    cursor = await conn.execute(_claim_load_sql()[0], _claim_params(message_id, lease), prepare=True)
    return _claimed(await cursor.fetchone())


async def message_load_async(conn, *, message_id: int) -> Claimed | None:
    """The message with its conversation, channel and profile, and its conversation's
    unanswered texts, as `inbound_claim_load` reads them, without claiming (None: no such
    message)."""
    cursor = await conn.execute(_claim_load_sql(claim=False)[0], {"2": message_id}, prepare=True)
    return _claimed(await cursor.fetchone())


def _claim_params(message_id: int, lease) -> dict:
    now = timezone.now()
    return {"1": now + lease, "2": message_id, "3": now}


def _claimed(row) -> Claimed | None:
    if row is None:
        return None
    _sql, message_cols, conversation_cols, channel_cols, profile_cols = _claim_load_sql()
    row = list(row)
    sizes = [len(c.names) for c in (message_cols, conversation_cols, channel_cols, profile_cols)]
    parts, start = [], 0
    for size in sizes:
        parts.append(row[start : start + size])
        start += size
    message = _instance(message_cols, parts[0])
    conversation = _instance(conversation_cols, parts[1])
    Conversation.channel.field.set_cached_value(conversation, _instance(channel_cols, parts[2]))
    Conversation.profile.field.set_cached_value(conversation, _instance(profile_cols, parts[3]))
    Message.conversation.field.set_cached_value(message, conversation)
    burst_rows = row[start]
    if isinstance(burst_rows, str):
        burst_rows = json.loads(burst_rows)
    burst = [
        message if pk == message.pk else Message.from_db(DEFAULT_DB_ALIAS, ("id", "conversation_id", "type", "text"), [pk, conversation.pk, type_, text])
        for pk, type_, text in burst_rows or []
    ]
    return Claimed(message=message, burst=burst)


# --- the reply's commit ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _bump_sql() -> str:
    qn = _backend().ops.quote_name
    return (
        f"UPDATE {qn(Conversation._meta.db_table)} SET last_message_at = %s, last_message_preview = %s, "
        f"revision = revision + 1, changed_at = %s WHERE id = %s AND owner = {_literal(Owner.BOT)}"
    )


@lru_cache(maxsize=1)
def _reply_insert_sql() -> tuple[str, tuple]:
    db = _backend()
    qn = db.ops.quote_name
    table = qn(Message._meta.db_table)
    fields = tuple(f for f in Message._meta.concrete_fields if not f.primary_key)
    columns = ", ".join(qn(f.column) for f in fields)
    values = ", ".join(f"%s::{f.cast_db_type(db)}" for f in fields)
    # The owner test sees this transaction's bump: it fails only when the bump did nothing.
    sql = f"""
WITH burst AS (
    UPDATE {table} SET handled_at = %s, locked_until = NULL,
        -- The usage of the extraction of one of them, when given (else u.usage_id is NULL).
        ai_model = CASE WHEN {table}.id = u.usage_id THEN u.usage_model ELSE ai_model END,
        input_tokens = CASE WHEN {table}.id = u.usage_id THEN u.usage_input ELSE input_tokens END,
        cached_tokens = CASE WHEN {table}.id = u.usage_id THEN u.usage_cached ELSE cached_tokens END,
        output_tokens = CASE WHEN {table}.id = u.usage_id THEN u.usage_output ELSE output_tokens END,
        cost_usd = CASE WHEN {table}.id = u.usage_id THEN u.usage_cost ELSE cost_usd END
    FROM (SELECT %s::bigint AS usage_id, %s::varchar(64) AS usage_model, %s::integer AS usage_input,
                 %s::integer AS usage_cached, %s::integer AS usage_output, %s::numeric(12, 6) AS usage_cost) u
    WHERE {table}.id = ANY(%s::bigint[]) AND handled_at IS NULL
      AND EXISTS (SELECT 1 FROM {qn(Conversation._meta.db_table)} WHERE id = %s AND owner = {_literal(Owner.BOT)})
      AND NOT EXISTS (
        SELECT 1 FROM {table} newer
        WHERE newer.conversation_id = %s AND newer.direction = {_literal(Direction.INBOUND)}
          AND newer.type IN {_TEXT_TYPES_SQL} AND newer.handled_at IS NULL AND newer.id > %s)
    RETURNING {table}.id),
reply AS (
    INSERT INTO {table} ({columns}) SELECT {values} WHERE (SELECT count(*) FROM burst) = %s
    RETURNING id)
SELECT (SELECT count(*) FROM burst), (SELECT id FROM reply), EXISTS (
    SELECT 1 FROM {table} newer
    WHERE newer.conversation_id = %s AND newer.direction = {_literal(Direction.INBOUND)}
      AND newer.type IN {_TEXT_TYPES_SQL} AND newer.handled_at IS NULL AND newer.id > %s)"""
    return sql, fields


class _Rollback(Exception):
    pass


def reply_commit(
    *, conversation: Conversation, burst: list[Message], reply: Message, preview: str, usage: tuple[int, dict] | None = None
) -> str | None:
    """Store the bot's `reply` (an unsaved Message) and mark the burst handled, in one
    transaction, as the ORM path's `_commit` does for a bot-owned conversation: the UPDATE
    that bumps the conversation for the reply takes its lock (so every message stored before
    is visible to the next statement, which has its own snapshot), then one statement marks
    the burst handled unless a newer text waits and, only if all of it was marked, inserts
    the reply. "sent" (reply.pk is set), "stale", "skipped", or None: the conversation is not
    the bot's (nothing written; the ORM path decides). `usage`: (message id, the fields of
    `message_usage_set`) of the extraction of a message of the burst, stored with it (one
    statement cannot update a row twice, so it is part of the burst's UPDATE)."""
    params = _reply_commit_params(conversation=conversation, burst=burst, reply=reply, preview=preview, usage=usage)
    outcome = None
    try:
        with pipelined_transaction() as cursor:
            # Pipelined: nothing is read until the second statement's row, one round trip.
            bump = psycopg.Cursor(cursor.connection)
            bump.execute(_bump_sql(), params.bump, prepare=True)
            cursor.execute(_reply_insert_sql()[0], params.insert, prepare=True)
            row = cursor.fetchone()  # reads both results (rowcount is known only after it)
            outcome = _reply_outcome(reply, bump.rowcount, row)
            if outcome != "sent":
                raise _Rollback
    except _Rollback:
        pass
    return outcome


async def reply_commit_async(conn, **kwargs) -> str | None:
    """`reply_commit` on an async psycopg connection in autocommit mode (same statements,
    same pipelined transaction: BEGIN goes with the first, COMMIT after the second)."""
    params = _reply_commit_params(**kwargs)
    try:
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            bump = await conn.execute(_bump_sql(), params.bump, prepare=True)
            cursor = await conn.execute(_reply_insert_sql()[0], params.insert, prepare=True)
            row = await cursor.fetchone()  # reads both results (rowcount is known only after it)
            outcome = _reply_outcome(kwargs["reply"], bump.rowcount, row)
            await conn.execute(b"COMMIT" if outcome == "sent" else b"ROLLBACK")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                await conn.execute(b"ROLLBACK")
            except psycopg.Error:
                pass  # a broken connection: the pool discards it
        raise
    return outcome


@dataclass
class _CommitParams:
    bump: list
    insert: list


def _reply_commit_params(
    *, conversation: Conversation, burst: list[Message], reply: Message, preview: str, usage: tuple[int, dict] | None = None
) -> _CommitParams:
    db = _backend()
    now = reply.created_at
    last = burst[-1].pk
    values = [f.get_db_prep_save(getattr(reply, f.attname), db) for f in _reply_insert_sql()[1]]
    usage_id, usage_values = usage if usage else (None, {})
    usage_params = [usage_id, *(usage_values.get(name) for name in _USAGE_FIELDS)]
    return _CommitParams(
        bump=[now, preview, now, conversation.pk],
        insert=[now, *usage_params, [m.pk for m in burst], conversation.pk, conversation.pk, last, *values, len(burst), conversation.pk, last],
    )


def _reply_outcome(reply: Message, bumped: int, row) -> str | None:
    """What the commit's two statements say; on "sent" `reply` becomes the stored row."""
    _marked, reply_id, newer = row
    if bumped != 1:
        return None  # not the bot's conversation (the second statement did nothing either)
    if reply_id is None:
        return "stale" if newer else "skipped"
    reply.pk = reply_id
    reply._state.adding, reply._state.db = False, DEFAULT_DB_ALIAS
    return "sent"


# --- after the send ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _mark_sent_sql() -> str:
    qn = _backend().ops.quote_name
    return f"""
WITH sent AS (
    UPDATE {qn(Message._meta.db_table)}
    SET wamid = %s, status = {_literal(MessageStatus.SENT)}, status_rank = {STATUS_RANK[MessageStatus.SENT]},
        sent_at = %s, locked_until = NULL, handled_at = %s
    WHERE id = %s),
conversation AS (
    UPDATE {qn(Conversation._meta.db_table)} SET revision = revision + 1, changed_at = %s WHERE id = %s)
SELECT EXISTS (SELECT 1 FROM {qn(StatusUpdate._meta.db_table)} WHERE wamid = %s AND NOT applied)"""


def message_mark_sent(*, message_id: int, conversation_id: int, wamid: str, sent_at) -> bool:
    """The message is sent and the conversation's revision moves, in one statement; True
    when Meta already reported statuses for this wamid (to apply now)."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.wrap_database_errors:
        cursor = _cursor(db)
        cursor.execute(_mark_sent_sql(), _mark_sent_params(message_id, conversation_id, wamid, sent_at), prepare=True)
        return bool(cursor.fetchone()[0])


async def message_mark_sent_async(conn, *, message_id: int, conversation_id: int, wamid: str, sent_at) -> bool:
    cursor = await conn.execute(_mark_sent_sql(), _mark_sent_params(message_id, conversation_id, wamid, sent_at), prepare=True)
    return bool((await cursor.fetchone())[0])


def _mark_sent_params(message_id: int, conversation_id: int, wamid: str, sent_at) -> list:
    return [wamid, sent_at, sent_at, message_id, sent_at, conversation_id, wamid]


_USAGE_FIELDS = ("ai_model", "input_tokens", "cached_tokens", "output_tokens", "cost_usd")


@lru_cache(maxsize=1)
def _usage_sql() -> str:
    qn = _backend().ops.quote_name
    return (
        f"UPDATE {qn(Message._meta.db_table)} SET ai_model = %s, input_tokens = %s, cached_tokens = %s, "
        "output_tokens = %s, cost_usd = %s WHERE id = %s"
    )


def message_usage_set(*, message_id: int, ai_model: str, input_tokens, cached_tokens, output_tokens, cost_usd) -> None:
    db = connections[DEFAULT_DB_ALIAS]
    with db.wrap_database_errors:
        _cursor(db).execute(_usage_sql(), [ai_model, input_tokens, cached_tokens, output_tokens, cost_usd, message_id], prepare=True)


async def message_usage_set_async(conn, *, message_id: int, **usage) -> None:
    """`message_usage_set` on an async connection (the same fields)."""
    await conn.execute(_usage_sql(), [*(usage[name] for name in _USAGE_FIELDS), message_id], prepare=True)
