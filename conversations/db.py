"""`INSERT … ON CONFLICT … RETURNING` for the webhook's hot path.

Deduplication must happen inside the database under a unique constraint (never
check-then-insert), and the caller must learn which rows were new so that a duplicate
delivery queues no task. Django's `bulk_create(ignore_conflicts=True)` does not say which
rows went in, so this builds the statement from the model's own fields. PostgreSQL and
SQLite (3.35+) share this syntax.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone


_EXISTING = re.compile(r"\bT\.")


def insert_returning(
    model: type[models.Model],
    rows: Sequence[dict],
    *,
    conflict: Sequence[str],
    update: dict[str, str] | None = None,
    returning: Sequence[str] = ("id",),
) -> list[tuple]:
    """Insert `rows` (field name → value; missing fields take their defaults).

    On a conflict on the `conflict` columns, do nothing (the row is not returned) or, with
    `update`, run `SET column = <sql>` (the row is returned). `<sql>` may use `EXCLUDED.col`
    and `T.col` for the existing row.
    """
    if not rows:
        return []
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, AutoFieldMixin))]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(f.column) for f in fields)
    one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list = []
    now = timezone.now()
    for row in rows:
        for f in fields:
            if f.name in row:
                value = row[f.name]
            elif f.attname in row:
                value = row[f.attname]
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = now
            else:
                value = f.get_default()
            if isinstance(value, models.Model):
                value = value.pk
            params.append(f.get_db_prep_save(value, connection))
    target = ", ".join(qn(model._meta.get_field(name).column) for name in conflict)
    if update:
        sets = ", ".join(qn(col) + " = " + _EXISTING.sub(table + ".", sql) for col, sql in update.items())
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    ret = ", ".join(qn(model._meta.get_field(name).column) for name in returning)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([one_row] * len(rows))} "
        f"ON CONFLICT ({target}) {action} RETURNING {ret}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


# --- PostgreSQL-only statements for the webhook's hot path ----------------------------------
# Building SQL from model metadata is not free (field casts, quoting, defaults): done per
# model once and per row shape once, not per request.


@dataclass(frozen=True)
class _Plan:
    fields: tuple
    columns: str  # quoted column list
    casts: tuple[str, ...]  # the PostgreSQL type of each field, for CAST(... AS type)


@lru_cache(maxsize=None)
def _plan(model: type[models.Model], without: tuple[str, ...] = ()) -> _Plan:
    fields = tuple(
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, AutoFieldMixin)) and f.name not in without
    )
    qn = connection.ops.quote_name
    return _Plan(fields, ", ".join(qn(f.column) for f in fields), tuple(f.cast_db_type(connection) for f in fields))


# Defaults that may be shared by every row of one statement. Anything else (a uuid4
# default, say) is computed per row.
_SHARED_DEFAULTS = (dict, list, timezone.now)


def _shared_default(field) -> bool:
    return not field.has_default() or not callable(field.default) or field.default in _SHARED_DEFAULTS


def json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _recordset(fields: Sequence, rows: Sequence[dict], extra: Sequence[str] = ()) -> tuple[tuple[str, ...], str]:
    """The rows as ONE JSON array for `jsonb_to_recordset`, and which fields they carry.

    Serialising a batch with the C json encoder is far cheaper than adapting every value
    of every row through the ORM and the driver (one parameter instead of rows x columns).
    """
    present = tuple(f.name for f in fields if any(f.name in row or f.attname in row for row in rows))
    per_row = tuple(f.name for f in fields if f.name not in present and not _shared_default(f))
    by_name = {f.name: f for f in fields}
    records = []
    for row in rows:
        record = {name: row[name] for name in extra}
        for name in present:
            f = by_name[name]
            value = row[name] if name in row else row.get(f.attname)
            record[f.column] = value.pk if isinstance(value, models.Model) else value
        for name in per_row:
            record[by_name[name].column] = by_name[name].get_default()
        records.append(record)
    return present + per_row, json.dumps(records, default=json_default, ensure_ascii=False)


_NOW = object()  # stands for "the statement's timestamp" among a select list's parameters


def _select_list(fields: Sequence, casts: Sequence[str], present: Sequence[str], db, values: dict | None = None) -> tuple[str, list]:
    """The select list of an INSERT … SELECT and its parameters.

    A field in `present` is `v."col"` (from the JSON recordset) or, when `values` is given,
    a parameter taken from `values`. Every other field takes its default: constant defaults
    are SQL literals in the cached statement text (nothing to adapt or send per request),
    timestamps a parameter.
    """
    sql, template = _select_list_plan(tuple(fields), tuple(casts), tuple(present), db.alias, values is not None)
    now = timezone.now()
    params = []
    for item in template:
        if item is _NOW:
            params.append(now)
        else:
            value = values[item.name] if item.name in values else values[item.attname]
            params.append(item.get_db_prep_save(value.pk if isinstance(value, models.Model) else value, db))
    return sql, params


@lru_cache(maxsize=64)
def _select_list_plan(
    fields: tuple, casts: tuple[str, ...], present: tuple[str, ...], alias: str, from_values: bool
) -> tuple[str, tuple]:
    from psycopg import sql

    db = connections[alias]
    qn = db.ops.quote_name
    exprs, template = [], []
    for f, cast in zip(fields, casts):
        if f.name in present:
            if from_values:
                exprs.append(f"%s::{cast}")
                template.append(f)
            else:
                exprs.append(f"v.{qn(f.column)}")
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) or f.default is timezone.now:
            exprs.append(f"%s::{cast}")
            template.append(_NOW)
        elif _shared_default(f):
            literal = sql.Literal(f.get_db_prep_save(f.get_default(), db)).as_string(None)
            exprs.append(f"{literal}::{cast}".replace("%", "%%"))
        else:
            raise ValueError(f"{f.name} has a per-row default: the rows must carry it")
    return ", ".join(exprs), tuple(template)


def _definitions(fields: Sequence, casts: Sequence[str], present: Sequence[str], qn) -> str:
    return ", ".join(f"{qn(f.column)} {cast}" for f, cast in zip(fields, casts) if f.name in present)


@lru_cache(maxsize=64)
def _thread_rows_sql(
    profile_present: tuple[str, ...], message_present: tuple[str, ...], profile_update: tuple[tuple[str, str], ...]
) -> tuple[str, str, str]:
    """The statement in four parts; the select lists (with their defaults) go in between."""
    from profiles.models import ClientProfile

    from .models import Conversation, Message

    qn = connection.ops.quote_name
    profile, conversation, message = _plan(ClientProfile), _plan(Conversation), _plan(Message, ("conversation",))
    profile_table = qn(ClientProfile._meta.db_table)
    profile_sets = ", ".join(qn(col) + " = " + _EXISTING.sub(profile_table + ".", sql) for col, sql in profile_update)
    conversation_columns = ", ".join(qn(f.column) for f in _conversation_fields(conversation))
    head = f"WITH profile AS (INSERT INTO {profile_table} ({profile.columns}) SELECT "
    middle = (
        f" FROM jsonb_to_recordset(%s::jsonb) AS v({_definitions(profile.fields, profile.casts, profile_present, qn)}) "
        f"ORDER BY v.{qn('wa_id')} "
        f"ON CONFLICT ({qn('wa_id')}) DO UPDATE SET {profile_sets} RETURNING {qn('id')}, {qn('wa_id')}), "
        f"conversation AS (INSERT INTO {qn(Conversation._meta.db_table)} ({qn('profile_id')}, {conversation_columns}) "
        "SELECT p.id, "
    )
    after_conversation = (
        " FROM profile p ORDER BY p.id "
        # A no-op update, so that existing rows are returned too.
        f"ON CONFLICT ({qn('channel_id')}, {qn('profile_id')}) DO UPDATE SET {qn('channel_id')} = EXCLUDED.{qn('channel_id')} "
        f"RETURNING {qn('id')}, {qn('profile_id')}), "
        f"message AS (INSERT INTO {qn(Message._meta.db_table)} ({qn('conversation_id')}, {message.columns}) SELECT c.id, "
    )
    message_definitions = _definitions(message.fields, message.casts, message_present, qn)
    tail = (
        f" FROM jsonb_to_recordset(%s::jsonb) AS v(_wa_id text, _position integer, {message_definitions}) "
        "JOIN profile p ON p.wa_id = v._wa_id JOIN conversation c ON c.profile_id = p.id "
        # Ids follow the order Meta sent the messages in (a thread is read by id).
        "ORDER BY v._position "
        f"ON CONFLICT ({qn('wamid')}) DO NOTHING "
        f"RETURNING {qn('id')}, {qn('wamid')}, {qn('conversation_id')}) "
        "SELECT id, wamid, conversation_id FROM message ORDER BY id"
    )
    return head, middle, after_conversation, tail


def _conversation_fields(plan: _Plan) -> tuple:
    return tuple(f for f in plan.fields if f.name != "profile")


def thread_rows_store(
    *,
    profiles: Sequence[dict],
    conversation: dict,
    messages: Sequence[dict],
    profile_update: dict[str, str],
    cursor=None,
) -> list[tuple]:
    """Upsert profiles, their conversations and insert messages in ONE statement (PostgreSQL).

    A webhook's messages need a profile row, then a conversation row, then the message
    row; one statement each is three round trips to the database per POST. Here they are
    data-modifying CTEs of a single statement, one round trip whatever the batch size, and
    the rows travel as two JSON parameters.

    `profiles`: one dict per distinct `wa_id`. `conversation`: the values shared by every
    conversation row (`profile` is filled in). `messages`: one dict per message with its
    customer's `wa_id` under "wa_id" (`conversation` is filled in). Rows are locked in key
    order, so concurrent webhooks touching the same customers wait instead of deadlocking.
    Messages are inserted under the unique `wamid` with DO NOTHING: a duplicate is neither
    inserted nor returned. Returns `(message id, wamid, conversation id)` of the new
    messages, by id. `cursor`: a cursor of `pipelined_transaction()` (else Django's).
    """
    from profiles.models import ClientProfile

    from .models import Conversation, Message

    db = connections[DEFAULT_DB_ALIAS]
    profile, conversation_plan, message = _plan(ClientProfile), _plan(Conversation), _plan(Message, ("conversation",))
    profile_present, profile_json = _recordset(profile.fields, profiles)
    message_rows = [{**row, "_wa_id": row["wa_id"], "_position": i} for i, row in enumerate(messages)]
    message_present, message_json = _recordset(message.fields, message_rows, extra=("_wa_id", "_position"))
    head, middle, after_conversation, tail = _thread_rows_sql(profile_present, message_present, tuple(profile_update.items()))
    profile_select, profile_params = _select_list(profile.fields, profile.casts, profile_present, db)
    message_select, message_params = _select_list(message.fields, message.casts, message_present, db)
    conversation_fields = _conversation_fields(conversation_plan)
    conversation_present = tuple(f.name for f in conversation_fields if f.name in conversation or f.attname in conversation)
    conversation_select, conversation_params = _select_list(
        conversation_fields, tuple(c for f, c in zip(conversation_plan.fields, conversation_plan.casts) if f.name != "profile"),
        conversation_present, db, values=conversation,
    )
    params = [*profile_params, profile_json, *conversation_params, *message_params, message_json]
    sql = head + profile_select + middle + conversation_select + after_conversation + message_select + tail
    if cursor is not None:
        cursor.execute(sql, params, prepare=True)
        return list(cursor.fetchall())
    with db.cursor() as django_cursor:
        django_cursor.execute(sql, params)
        return list(django_cursor.fetchall())


def update_from_values(
    model: type[models.Model], rows: Sequence[dict], *, set: dict[str, str], fields: Sequence[str], cursor=None
) -> int | None:
    """One `UPDATE … FROM <rows>` for many rows instead of one UPDATE per row (PostgreSQL).

    `rows`: dicts with "id" and the `fields`. `set`: column → SQL, where `v.<field>` is the
    row's value and `T.<column>` the current one. Rows are updated in id order. With a
    `cursor` of `pipelined_transaction()` the statement is queued and None is returned.
    """
    if not rows:
        return 0
    db = connections[DEFAULT_DB_ALIAS]
    rows = sorted(rows, key=lambda r: r["id"])
    # One JSON parameter (see `_recordset`), not an array per field adapted value by value.
    params = [json.dumps([{"_id": row["id"], **{name: row[name] for name in fields}} for row in rows], default=json_default)]
    sql = _update_from_values_sql(model, tuple(fields), tuple(set.items()))
    if cursor is not None:
        cursor.execute(sql, params, prepare=True)
        return None
    with db.cursor() as django_cursor:
        django_cursor.execute(sql, params)
        return django_cursor.rowcount


@lru_cache(maxsize=16)
def _update_from_values_sql(model: type[models.Model], fields: tuple[str, ...], sets: tuple[tuple[str, str], ...]) -> str:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    definitions = ", ".join(
        [f"_id {model._meta.pk.cast_db_type(connection)}"]
        + [f"{qn(name)} {model._meta.get_field(name).cast_db_type(connection)}" for name in fields]
    )
    assignments = ", ".join(qn(col) + " = " + _EXISTING.sub(table + ".", sql) for col, sql in sets)
    return (
        f"UPDATE {table} SET {assignments} FROM jsonb_to_recordset(%s::jsonb) AS v({definitions}) "
        f"WHERE {table}.{qn(model._meta.pk.column)} = v._id"
    )


@contextmanager
def pipelined_transaction(*, health_check: bool = True) -> Iterator:
    """A psycopg cursor in pipeline mode inside one transaction (PostgreSQL, hot path only).

    Django's cursors wait for every statement, BEGIN and COMMIT included: six round trips
    for a webhook POST. In pipeline mode BEGIN goes out with the first statement whose
    result is read, and the statements after it go out with the COMMIT: two round trips. Statements are sent with
    server-side binding and prepared once per connection, so PostgreSQL does not parse
    and plan them again for every request. The connection is Django's own (same health
    check, same lifetime); inside an atomic block (tests) the transaction is a savepoint.
    Work to do after the commit still goes through `transaction.on_commit`.

    `health_check=False` skips `CONN_HEALTH_CHECKS`' `SELECT 1` (a round trip): for a caller
    that retries on a fresh connection when its first round trip finds the connection dead.
    """
    import psycopg

    from django.db import transaction

    db = connections[DEFAULT_DB_ALIAS]
    if db.in_atomic_block:
        # Already in a transaction (a test, a caller's atomic): a savepoint, Django's way.
        prepared_statements_allow(db.connection)
        with transaction.atomic(using=db.alias), db.wrap_database_errors:
            with db.connection.pipeline():
                yield psycopg.Cursor(db.connection)
        return
    if health_check:
        db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        conn = db.connection
        prepared_statements_allow(conn)
        # Not closed on exit: the results of queued statements are read after the commit.
        cursor = psycopg.Cursor(conn)
        # BEGIN and COMMIT as plain statements of the pipeline (the connection is in
        # autocommit mode, as Django keeps it outside atomic blocks). psycopg's
        # `transaction()` would nest pipelines, and each nested exit is a Sync: two more
        # round trips.
        try:
            with conn.pipeline():
                conn.execute(b"BEGIN")
                yield cursor
                conn.execute(b"COMMIT")
        except BaseException:
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                try:
                    conn.execute(b"ROLLBACK")
                except psycopg.Error:
                    pass  # a broken connection: Django closes it at the end of the request
            raise


def prepared_statements_allow(conn) -> None:
    """Let this connection prepare the statements executed with `prepare=True`.

    Django opens psycopg connections with preparation off. Its own cursors bind parameters
    client-side and are never prepared, so turning it on here affects only the hot path's
    statements. Their plans do not depend on the parameters (JSON recordsets, arrays), so
    the generic plan is used from the start: planning the profile/conversation/message
    statement costs PostgreSQL more CPU than running it.
    """
    if conn.prepare_threshold is None:
        conn.prepare_threshold = 1 << 30  # never automatically; only when asked
        conn.execute("SET plan_cache_mode = force_generic_plan")
