"""`INSERT … ON CONFLICT … RETURNING` for the webhook's hot path.

Deduplication must happen inside the database under a unique constraint (never
check-then-insert), and the caller must learn which rows were new so that a duplicate
delivery queues no task. Django's `bulk_create(ignore_conflicts=True)` does not say which
rows went in, so this builds the statement from the model's own fields. PostgreSQL and
SQLite (3.35+) share this syntax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
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


# Defaults that may be shared by every row of one statement (anything else, e.g. a uuid4
# default, is computed per row).
_SHARED_DEFAULTS = (dict, list, timezone.now)


def _row_values(fields: Sequence, rows: Sequence[dict], db) -> list:
    now = timezone.now()
    shared: dict[str, object] = {}
    params: list = []
    for row in rows:
        for f in fields:
            if f.name in row:
                value = row[f.name]
            elif f.attname in row:
                value = row[f.attname]
            elif f.name in shared:
                params.append(shared[f.name])
                continue
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = now
            else:
                value = f.get_default()
                if not callable(f.default) or f.default in _SHARED_DEFAULTS:
                    shared[f.name] = f.get_db_prep_save(value, db)
                    params.append(shared[f.name])
                    continue
            if isinstance(value, models.Model):
                value = value.pk
            params.append(f.get_db_prep_save(value, db))
    return params


def _placeholders(width: int, count: int) -> str:
    one = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([one] * count)


@lru_cache(maxsize=256)
def _thread_rows_sql(profiles: int, messages: int, profile_update: tuple[tuple[str, str], ...]) -> str:
    from profiles.models import ClientProfile

    from .models import Conversation, Message

    qn = connection.ops.quote_name
    profile, conversation, message = _plan(ClientProfile), _plan(Conversation), _plan(Message, ("conversation",))
    profile_table = qn(ClientProfile._meta.db_table)
    profile_sets = ", ".join(qn(col) + " = " + _EXISTING.sub(profile_table + ".", sql) for col, sql in profile_update)
    profile_sql = (
        f"INSERT INTO {profile_table} ({profile.columns}) VALUES {_placeholders(len(profile.fields), profiles)} "
        f"ON CONFLICT ({qn('wa_id')}) DO UPDATE SET {profile_sets} RETURNING {qn('id')}, {qn('wa_id')}"
    )
    conversation_select = ", ".join(
        "p.id" if f.name == "profile" else f"CAST(%s AS {cast})" for f, cast in zip(conversation.fields, conversation.casts)
    )
    conversation_sql = (
        f"INSERT INTO {qn(Conversation._meta.db_table)} ({conversation.columns}) "
        f"SELECT {conversation_select} FROM profile p ORDER BY p.id "
        # A no-op update, so that existing rows are returned too.
        f"ON CONFLICT ({qn('channel_id')}, {qn('profile_id')}) DO UPDATE SET {qn('channel_id')} = EXCLUDED.{qn('channel_id')} "
        f"RETURNING {qn('id')}, {qn('profile_id')}"
    )
    names = ", ".join(["_position", "_wa_id"] + [f"v{i}" for i in range(len(message.fields))])
    message_select = ", ".join(f"CAST(v.v{i} AS {cast})" for i, cast in enumerate(message.casts))
    message_sql = (
        f"INSERT INTO {qn(Message._meta.db_table)} ({qn('conversation_id')}, {message.columns}) "
        f"SELECT c.id, {message_select} "
        f"FROM (VALUES {_placeholders(len(message.fields) + 2, messages)}) AS v({names}) "
        "JOIN profile p ON p.wa_id = v._wa_id JOIN conversation c ON c.profile_id = p.id "
        # Ids follow the order Meta sent the messages in (a thread is read by id).
        "ORDER BY v._position::integer "
        f"ON CONFLICT ({qn('wamid')}) DO NOTHING "
        f"RETURNING {qn('id')}, {qn('wamid')}, {qn('conversation_id')}"
    )
    return (
        f"WITH profile AS ({profile_sql}), conversation AS ({conversation_sql}), message AS ({message_sql}) "
        "SELECT id, wamid, conversation_id FROM message ORDER BY id"
    )


def thread_rows_store(
    *,
    profiles: Sequence[dict],
    conversation: dict,
    messages: Sequence[dict],
    profile_update: dict[str, str],
) -> list[tuple]:
    """Upsert profiles, their conversations and insert messages in ONE statement (PostgreSQL).

    A webhook's messages need a profile row, then a conversation row, then the message
    row; one statement each is three round trips to the database per POST. Here they are
    data-modifying CTEs of a single statement, one round trip whatever the batch size.

    `profiles`: one dict per distinct `wa_id`. `conversation`: the values shared by every
    conversation row (`profile` is filled in). `messages`: one dict per message with its
    customer's `wa_id` under "wa_id" (`conversation` is filled in). Messages are inserted
    under the unique `wamid` with DO NOTHING, so a duplicate is neither inserted nor
    returned. Returns `(message id, wamid, conversation id)` of the new messages, by id.
    """
    from profiles.models import ClientProfile

    from .models import Conversation, Message

    db = connections[DEFAULT_DB_ALIAS]
    # Rows are locked in key order, so two concurrent webhooks touching the same customers
    # wait for each other instead of deadlocking.
    profiles = sorted(profiles, key=lambda r: r["wa_id"])
    conversation_fields = [f for f in _plan(Conversation).fields if f.name != "profile"]
    params = _row_values(_plan(ClientProfile).fields, profiles, db)
    params += _row_values(conversation_fields, [conversation], db)
    message_fields = _plan(Message, ("conversation",)).fields
    values = _row_values(message_fields, messages, db)
    width = len(message_fields)
    for position, row in enumerate(messages):
        params += [position, row["wa_id"], *values[position * width : (position + 1) * width]]
    sql = _thread_rows_sql(len(profiles), len(messages), tuple(profile_update.items()))
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def update_from_values(
    model: type[models.Model], rows: Sequence[dict], *, set: dict[str, str], fields: Sequence[str]
) -> int:
    """One `UPDATE … FROM (VALUES …)` for many rows instead of one UPDATE per row (PostgreSQL).

    `rows`: dicts with "id" and the `fields`. `set`: column → SQL, where `v.<field>` is the
    row's value and `T.<column>` the current one.
    """
    if not rows:
        return 0
    db = connections[DEFAULT_DB_ALIAS]
    model_fields = [model._meta.get_field(name) for name in fields]
    params: list = []
    for row in sorted(rows, key=lambda r: r["id"]):
        params.append(row["id"])
        params += [f.get_db_prep_save(row[f.name], db) for f in model_fields]
    sql = _update_from_values_sql(model, tuple(fields), tuple(set.items()), len(rows))
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@lru_cache(maxsize=256)
def _update_from_values_sql(model: type[models.Model], fields: tuple[str, ...], sets: tuple[tuple[str, str], ...], count: int) -> str:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    typed = ", ".join(
        [f"CAST(v._id AS {model._meta.pk.cast_db_type(connection)}) AS _id"]
        + [f"CAST(v.{name} AS {model._meta.get_field(name).cast_db_type(connection)}) AS {name}" for name in fields]
    )
    assignments = ", ".join(qn(col) + " = " + _EXISTING.sub(table + ".", sql) for col, sql in sets)
    return (
        f"UPDATE {table} SET {assignments} "
        f"FROM (SELECT {typed} FROM (VALUES {_placeholders(len(fields) + 1, count)}) AS v(_id, {', '.join(fields)})) AS v "
        f"WHERE {table}.{qn(model._meta.pk.column)} = v._id"
    )
