"""A delivery's customer messages stored: profiles, conversations, messages, thread state,
edits and deletions applied, and the delivery's own record — on a cursor of
`pipelined_transaction()`.

Deduplication happens inside the database under the unique `wamid` (never check-then-insert)
and the statement says which messages were new, so a redelivery queues no task. The rows
travel as JSON parameters (`jsonb_to_recordset`): serialising a batch with the C json
encoder costs far less than adapting every value of every row through the driver. The
statement texts are built from the models' metadata once per shape of row and kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import psycopg
from django.db import connection, models
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone
from psycopg import sql as psycopg_sql

from integrations.base import Identity
from profiles.models import ClientProfile

from ..database import json_text
from ..models import Conversation, ConversationStatus, Direction, MediaFile, MediaState, Message, MessageType, Owner
from . import REVISION_TYPES_SQL, backend, columns, literal, quote, row_values, table

# `T.col` in an upsert's SET clause: the existing row's value.
_EXISTING = re.compile(r"\bT\.")

# What a new message does to a profile that exists: a newer contact time (a first one when it
# had none: a contact saved in the WhatsApp Business app before it wrote), a name when given,
# an identity it did not know yet (a phone number learned later, a BSUID for a customer known
# by its number) unless another profile holds it.
PROFILE_UPSERT = {
    "profile_name": "CASE WHEN EXCLUDED.profile_name <> '' THEN EXCLUDED.profile_name ELSE T.profile_name END",
    "first_contact_at": "coalesce(T.first_contact_at, EXCLUDED.first_contact_at)",
    "last_contact_at": "CASE WHEN T.last_contact_at IS NULL OR EXCLUDED.last_contact_at > T.last_contact_at "
    "THEN EXCLUDED.last_contact_at ELSE T.last_contact_at END",
    **{
        column: f"CASE WHEN EXCLUDED.{column} <> '' AND T.{column} <> EXCLUDED.{column} AND NOT EXISTS "
        f"(SELECT 1 FROM {{profiles}} o WHERE o.{column} <> '' AND o.{column} = EXCLUDED.{column} AND o.key <> T.key) "
        f"THEN EXCLUDED.{column} ELSE T.{column} END"
        for column in ("wa_id", "user_id")
    },
    **{
        column: f"CASE WHEN EXCLUDED.{column} <> '' THEN EXCLUDED.{column} ELSE T.{column} END"
        for column in ("parent_user_id", "username")
    },
}


# A profile's phone number and BSUID are unique where known: partial indexes that PostgreSQL
# uses only when a query repeats their condition on the profile's column (a condition on the
# value looked for proves nothing to the planner), so every lookup says it.
KNOWN = "{} <> ''"


def profile_key_of(row: str) -> str:
    """SQL: the key of the profile that a row (`row`: an alias with `user_id`, `wa_id` and
    `key` columns) names: the one with its BSUID, else the one with its phone number, else
    the key a new profile would get (the row's own)."""
    profiles = table(ClientProfile)
    return (
        f"coalesce((SELECT p.key FROM {profiles} p WHERE {KNOWN.format('p.user_id')} AND p.user_id = {row}.user_id), "
        f"(SELECT p.key FROM {profiles} p WHERE {KNOWN.format('p.wa_id')} AND p.wa_id = {row}.wa_id), {row}.key)"
    )


# How the rows of one customer in one statement fold into one (a customer named twice, by
# its number in one message and by its BSUID in another): the earliest first contact, the
# latest of everything else, a non-empty value over an empty one.
_FOLD_EARLIEST = ("first_contact_at", "created_at")


@dataclass(frozen=True, eq=False)  # one per (model, without), from `_plan`: compared and hashed by identity
class _Plan:
    fields: tuple
    columns: str  # quoted column list
    casts: tuple[str, ...]  # the PostgreSQL type of each field


@lru_cache(maxsize=None)
def _plan(model: type[models.Model], without: tuple[str, ...] = ()) -> _Plan:
    db = backend()
    fields = tuple(
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, AutoFieldMixin)) and f.name not in without
    )
    return _Plan(fields, ", ".join(quote(f.column) for f in fields), tuple(f.cast_db_type(db) for f in fields))


# Defaults that may be shared by every row of one statement. Anything else (a uuid4
# default, say) is computed per row.
_SHARED_DEFAULTS = (dict, list, timezone.now)


def _shared_default(field) -> bool:
    return not field.has_default() or not callable(field.default) or field.default in _SHARED_DEFAULTS


def _recordset(fields: Sequence, rows: Sequence[dict], extra: Sequence[str] = ()) -> tuple[tuple[str, ...], str]:
    """The rows as one JSON array for `jsonb_to_recordset`, and which fields they carry."""
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
    return present + per_row, json_text(records)


_NOW = object()  # stands for "the statement's timestamp" among a select list's parameters


def _select_list(plan: _Plan, present: Sequence[str], values: dict | None = None, *, without: tuple[str, ...] = ()) -> tuple[str, list]:
    """The select list of an INSERT … SELECT and its parameters.

    A field in `present` is `v."col"` (from the JSON recordset) or, when `values` is given,
    a parameter taken from `values`. Every other field takes its default: constant defaults
    are SQL literals in the kept statement text, timestamps a parameter.
    """
    text, template = _select_list_plan(plan, tuple(present), values is not None, without)
    db, now = backend(), timezone.now()
    params = []
    for item in template:
        if item is _NOW:
            params.append(now)
        else:
            value = values[item.name] if item.name in values else values[item.attname]
            params.append(item.get_db_prep_save(value.pk if isinstance(value, models.Model) else value, db))
    return text, params


@lru_cache(maxsize=64)
def _select_list_plan(plan: _Plan, present: tuple[str, ...], from_values: bool, without: tuple[str, ...]) -> tuple[str, tuple]:
    db = backend()
    exprs, template = [], []
    for f, cast in zip(plan.fields, plan.casts):
        if f.name in without:
            continue
        if f.name in present:
            if from_values:
                exprs.append(f"%s::{cast}")
                template.append(f)
            else:
                exprs.append(f"v.{quote(f.column)}")
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) or f.default is timezone.now:
            exprs.append(f"%s::{cast}")
            template.append(_NOW)
        elif _shared_default(f):
            value = psycopg_sql.Literal(f.get_db_prep_save(f.get_default(), db)).as_string(None)
            exprs.append(f"{value}::{cast}".replace("%", "%%"))
        else:
            raise ValueError(f"{f.name} has a per-row default: the rows must carry it")
    return ", ".join(exprs), tuple(template)


def _definitions(plan: _Plan, present: Sequence[str]) -> str:
    return ", ".join(f"{quote(f.column)} {cast}" for f, cast in zip(plan.fields, plan.casts) if f.name in present)


@lru_cache(maxsize=64)
def _thread_rows_sql(profile_present: tuple[str, ...], message_present: tuple[str, ...]) -> tuple[str, str, str, str]:
    """The statement in four parts; the select lists (with their defaults) go in between."""
    profile, conversation, message = _plan(ClientProfile), _plan(Conversation), _plan(Message, ("conversation",))
    profiles = table(ClientProfile)
    profile_sets = ", ".join(
        quote(col) + " = " + _EXISTING.sub(profiles + ".", sql.replace("{profiles}", profiles)) for col, sql in PROFILE_UPSERT.items()
    )
    conversation_columns = ", ".join(quote(f.column) for f in conversation.fields if f.name != "profile")
    folded = ", ".join(
        f"{'min' if name in _FOLD_EARLIEST else 'max'}(r.{quote(f.column)}) AS {quote(f.column)}"
        for f in profile.fields
        if (name := f.name) in profile_present and name != "key"
    )
    # Each customer of the batch (`_ref`) resolved to the profile it already has, found by
    # its BSUID first, then by its phone number; a new one is keyed by what it carries.
    head = (
        f"WITH given AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v(_ref integer, {_definitions(profile, profile_present)})), "
        f"resolved AS (SELECT g.*, {profile_key_of('g')} AS _key FROM given g), "
        f"folded AS (SELECT r._key AS key, {folded} FROM resolved r GROUP BY r._key), "
        f"profile AS (INSERT INTO {profiles} ({profile.columns}) SELECT "
    )
    middle = (
        " FROM folded v ORDER BY v.key "
        f"ON CONFLICT ({quote('key')}) DO UPDATE SET {profile_sets} RETURNING {quote('id')}, {quote('key')}), "
        f"conversation AS (INSERT INTO {table(Conversation)} ({quote('profile_id')}, {conversation_columns}) "
        "SELECT p.id, "
    )
    after_conversation = (
        " FROM profile p ORDER BY p.id "
        # A no-op update, so that existing rows are returned too.
        f"ON CONFLICT ({quote('channel_id')}, {quote('profile_id')}) DO UPDATE SET {quote('channel_id')} = EXCLUDED.{quote('channel_id')} "
        f"RETURNING {quote('id')}, {quote('profile_id')}), "
        f"message AS (INSERT INTO {table(Message)} ({quote('conversation_id')}, {message.columns}) SELECT c.id, "
    )
    tail = (
        f" FROM jsonb_to_recordset(%s::jsonb) AS v(_ref integer, _position integer, {_definitions(message, message_present)}) "
        "JOIN resolved r ON r._ref = v._ref JOIN profile p ON p.key = r._key JOIN conversation c ON c.profile_id = p.id "
        # Ids follow the order the provider sent the messages in (a thread is read by id).
        "ORDER BY v._position "
        f"ON CONFLICT ({quote('wamid')}) DO NOTHING "
        f"RETURNING {quote('id')}, {quote('wamid')}, {quote('conversation_id')}) "
        # Whether an edit or a deletion of the message was stored before it (Meta redelivers
        # out of order): only then has `revisions_apply` anything to do for it.
        "SELECT id, wamid, conversation_id, EXISTS "
        f"(SELECT 1 FROM {table(Message)} e WHERE e.context_wamid = message.wamid AND e.type IN {REVISION_TYPES_SQL}) "
        "FROM message ORDER BY id"
    )
    return head, middle, after_conversation, tail


def thread_rows_store(cursor: psycopg.Cursor, *, channel_id: int, profiles: Sequence[dict], messages: Sequence[dict]) -> list[tuple]:
    """Upsert profiles and their conversations on the channel, and insert messages, in ONE
    statement: `[(message id, wamid, conversation id, revised)]` of the new messages, by id;
    `revised`: an edit or a deletion of it was stored already.

    `profiles`: one dict per customer of the batch, with its identities (`wa_id`, `user_id`,
    `parent_user_id`, `username`, any may be empty) and `key`, the key a new profile gets.
    `messages`: one dict per message with the position of its customer in `profiles` under
    "customer". A customer is found by any identity it has (`ClientProfile`). Rows are locked
    in key order, so deliveries touching the same customers at once wait instead of
    deadlocking. A message whose `wamid` is stored already is neither inserted nor returned.
    """
    profile, conversation, message = _plan(ClientProfile), _plan(Conversation), _plan(Message, ("conversation",))
    profile_present, profile_json = _recordset(profile.fields, [{**row, "_ref": i} for i, row in enumerate(profiles)], extra=("_ref",))
    message_rows = [{**row, "_ref": row["customer"], "_position": i} for i, row in enumerate(messages)]
    message_present, message_json = _recordset(message.fields, message_rows, extra=("_ref", "_position"))
    head, middle, after_conversation, tail = _thread_rows_sql(profile_present, message_present)
    now = timezone.now()
    shared = {"channel": channel_id, "created_at": now, "changed_at": now}
    profile_select, profile_params = _select_list(profile, profile_present)
    conversation_select, conversation_params = _select_list(conversation, tuple(shared), shared, without=("profile",))
    message_select, message_params = _select_list(message, message_present)
    text = head + profile_select + middle + conversation_select + after_conversation + message_select + tail
    cursor.execute(text, [profile_json, *profile_params, *conversation_params, *message_params, message_json], prepare=True)
    return list(cursor.fetchall())


@lru_cache(maxsize=1)
def _identity_move_sql() -> str:
    profiles = table(ClientProfile)
    # `%(old_…)s` find the profile as a message would (its BSUID first, then its number); an
    # identity another profile holds already is not taken (the unique indexes would refuse it).
    taken = f"NOT EXISTS (SELECT 1 FROM {profiles} o WHERE o.{{column}} <> '' AND o.{{column}} = %({{param}})s)"
    return (
        f"UPDATE {profiles} p SET "
        "user_id = CASE WHEN m.take_user THEN %(new_user_id)s ELSE p.user_id END, "
        # Meta gives a customer a new BSUID when its number changes: the number it had is no
        # longer known to be its own unless the change says which it is now.
        "wa_id = CASE WHEN m.take_phone THEN %(new_phone)s WHEN m.take_user THEN '' ELSE p.wa_id END, "
        "parent_user_id = CASE WHEN %(new_parent_user_id)s <> '' THEN %(new_parent_user_id)s ELSE p.parent_user_id END, "
        "username = CASE WHEN %(new_username)s <> '' THEN %(new_username)s ELSE p.username END, "
        "updated_at = %(now)s "
        "FROM (SELECT q.id, "
        "%(new_user_id)s <> '' AND %(new_user_id)s <> q.user_id AND "
        f"{taken.format(column='user_id', param='new_user_id')} AS take_user, "
        f"%(new_phone)s <> '' AND %(new_phone)s <> q.wa_id AND {taken.format(column='wa_id', param='new_phone')} AS take_phone "
        f"FROM {profiles} q WHERE (q.user_id <> '' AND q.user_id = %(old_user_id)s) "
        "OR (q.wa_id <> '' AND q.wa_id = %(old_phone)s) "
        "ORDER BY q.user_id = %(old_user_id)s DESC LIMIT 1) m "
        "WHERE p.id = m.id"
    )


def identity_move(cursor: psycopg.Cursor, *, old: Identity, new: Identity) -> None:
    """A customer's identity moved (a new number, a new BSUID): the profile known by `old`
    takes `new`'s parts, in place, so its conversations stay its own. Queued, not waited for;
    a statement queued after it (`thread_rows_store`) finds the customer by `new`."""
    cursor.execute(
        _identity_move_sql(),
        {
            "old_phone": old.phone, "old_user_id": old.user_id, "new_phone": new.phone, "new_user_id": new.user_id,
            "new_parent_user_id": new.parent_user_id, "new_username": new.username, "now": timezone.now(),
        },
        prepare=True,
    )  # fmt: skip


@lru_cache(maxsize=1)
def _threads_update_sql() -> str:
    conversations = table(Conversation)
    # A delivery may come days late (the provider retries) and past chats come after live
    # ones: nothing moves a thread's times, or its preview, back. GREATEST skips NULL (no
    # customer message in the rows: an echo, past chats).
    moves = "(c.last_message_at IS NULL OR v.last_message_at >= c.last_message_at)"
    # The hand-off rule of the turn's commit: to the human queue, unless a person has it already.
    handoff = f"v.handoff_reason <> '' AND c.owner = {literal(Owner.BOT)}"
    return (
        f"UPDATE {conversations} c SET last_inbound_at = GREATEST(c.last_inbound_at, v.last_inbound_at), "
        f"last_message_at = CASE WHEN {moves} THEN v.last_message_at ELSE c.last_message_at END, "
        f"last_message_preview = CASE WHEN {moves} THEN v.last_message_preview ELSE c.last_message_preview END, "
        "unread_count = c.unread_count + v.unread_count, "
        f"status = CASE WHEN v.forward_only THEN c.status ELSE {literal(ConversationStatus.OPEN)} END, "
        f"owner = CASE WHEN {handoff} THEN {literal(Owner.HUMAN)} ELSE c.owner END, "
        f"handoff_reason = CASE WHEN {handoff} THEN v.handoff_reason ELSE c.handoff_reason END, "
        f"handoff_at = CASE WHEN {handoff} THEN v.changed_at ELSE c.handoff_at END, "
        "waiting_since = CASE WHEN v.answered THEN v.waiting_from ELSE coalesce(c.waiting_since, v.waiting_from) END, "
        "revision = c.revision + 1, changed_at = v.changed_at "
        "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, last_inbound_at timestamptz, last_message_at timestamptz, "
        "last_message_preview text, unread_count integer, forward_only boolean, handoff_reason text, waiting_from timestamptz, "
        "answered boolean, changed_at timestamptz) "
        "WHERE c.id = v.id"
    )


def threads_update(cursor: psycopg.Cursor, threads: Sequence[dict]) -> None:
    """The conversations' state after new messages (the console's list, the 24-hour window,
    who answers): `threads` are dicts of id, last_inbound_at (the newest customer message's
    time; None: none came), last_message_at and last_message_preview (of the newest message),
    unread_count (how many new customer messages), forward_only (only past chats came),
    handoff_reason (not empty: the conversation goes to a person), waiting_from (the first
    customer message the business has not answered; None: none), answered (the business
    wrote: the wait starts again from `waiting_from`), changed_at. Updated in
    id order. Queued, not waited for."""
    if threads:
        rows = sorted(threads, key=lambda r: r["id"])
        cursor.execute(_threads_update_sql(), [json_text(rows)], prepare=True)


def identity_row(customer: Identity) -> dict:
    """A customer's identities as the statements here take them: its phone number, its BSUID,
    and `key`, what a new profile of it is keyed by (`ClientProfile.key_for`)."""
    return {
        "key": ClientProfile.key_for(user_id=customer.user_id, wa_id=customer.phone),
        "wa_id": customer.phone,
        "user_id": customer.user_id,
    }


@lru_cache(maxsize=1)
def _profiles_add_sql(present: tuple[str, ...]) -> str:
    profiles = table(ClientProfile)
    return (
        f"INSERT INTO {profiles} ({_plan(ClientProfile).columns}) SELECT {{select}} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({_definitions(_plan(ClientProfile), present)}) "
        f"WHERE NOT EXISTS (SELECT 1 FROM {profiles} p WHERE (p.user_id <> '' AND p.user_id = v.user_id) "
        "OR (p.wa_id <> '' AND p.wa_id = v.wa_id)) ORDER BY v.key ON CONFLICT DO NOTHING"
    )


def profiles_locked(cursor: psycopg.Cursor, *, identities: Sequence[dict]) -> list[ClientProfile]:
    """The profiles of `identities` (dicts of key, wa_id, user_id, as `thread_rows_store`
    takes them), locked in key order, found by BSUID or phone number; one that no profile
    has yet gets one (keyed by `key`), as a message of it would."""
    plan = _plan(ClientProfile)
    present, rows = _recordset(plan.fields, identities)
    select, params = _select_list(plan, present)
    cursor.execute(_profiles_add_sql(present).replace("{select}", select), [*params, rows], prepare=True)
    picked = columns(ClientProfile, "p")
    phones = sorted({i["wa_id"] for i in identities if i["wa_id"]})
    user_ids = sorted({i["user_id"] for i in identities if i["user_id"]})
    cursor.execute(
        f"SELECT {picked.sql} FROM {table(ClientProfile)} p WHERE (p.wa_id <> '' AND p.wa_id = ANY(%s::text[])) "
        "OR (p.user_id <> '' AND p.user_id = ANY(%s::text[])) "
        "ORDER BY p.key FOR UPDATE",
        [phones, user_ids],
        prepare=True,
    )
    return [picked.instance(list(row)) for row in cursor.fetchall()]


def profiles_update(cursor: psycopg.Cursor, profiles: Sequence[ClientProfile], fields: Sequence[str]) -> None:
    """`fields` of `profiles` (locked by the caller) written as the instances hold them, in one statement."""
    if not profiles:
        return
    plan = _plan(ClientProfile)
    written = [quote(f.column) for f in plan.fields if f.name in fields]
    sets = ", ".join(f"{column} = v.{column}" for column in written)
    rows = [{"id": p.pk, **{k: v for k, v in row_values(p).items() if quote(k) in written}} for p in profiles]
    cursor.execute(
        f"UPDATE {table(ClientProfile)} t SET {sets} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, {_definitions(plan, fields)}) WHERE t.id = v.id",
        [json_text(rows)],
        prepare=True,
    )


@lru_cache(maxsize=8)
def _records_insert_sql(model: type[models.Model]) -> str:
    plan = _plan(model)
    # The statement's text, so its prepared plan, is the same whatever the number of records.
    return (
        f"INSERT INTO {table(model)} ({plan.columns}) SELECT {', '.join('v.' + quote(f.column) for f in plan.fields)} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v(_position integer, {_definitions(plan, [f.name for f in plan.fields])}) "
        "ORDER BY v._position "
        f"RETURNING {quote('id')}"
    )


@lru_cache(maxsize=1)
def _media_pending_sql() -> str:
    return (
        f"INSERT INTO {table(MediaFile)} (message_id, state, file, mime_type, sha256, filename, error, attempts, provider_media_id, "
        f"created_at) SELECT id, {literal(MediaState.PENDING)}, '', '', '', '', '', 0, '', %s::timestamptz "
        "FROM unnest(%s::bigint[]) AS id ON CONFLICT (message_id) DO NOTHING"
    )


def media_pending_store(cursor: psycopg.Cursor, message_ids: Sequence[int]) -> None:
    """A pending media row for each new message that carries a file, in the delivery's
    transaction: a fetch whose task was lost (broker down at commit) is found by the media
    sweeper. None at all (no statement) in a delivery without media."""
    if message_ids:
        cursor.execute(_media_pending_sql(), [timezone.now(), sorted(message_ids)], prepare=True)


def records_insert(cursor: psycopg.Cursor, records: Sequence[models.Model]) -> None:
    """INSERT unsaved instances of one model (a delivery's own record) in one statement,
    queued; their ids are set by `records_saved` once the results are read."""
    rows = [{"_position": n, **row_values(r)} for n, r in enumerate(records)]
    cursor.execute(_records_insert_sql(type(records[0])), [json_text(rows)], prepare=True)


def records_saved(cursor: psycopg.Cursor, records: Sequence[models.Model]) -> None:
    """After the commit: the ids `records_insert` got, onto the instances."""
    for record, (pk,) in zip(records, cursor.fetchall(), strict=True):
        record.pk = pk
        record._state.adding, record._state.db = False, "default"


@lru_cache(maxsize=1)
def _revisions_apply_sql() -> str:
    messages, conversations = table(Message), table(Conversation)
    revisions = REVISION_TYPES_SQL
    edit, inbound = literal(MessageType.EDIT), literal(Direction.INBOUND)
    written = "coalesce(r.provider_timestamp, r.created_at)"
    return f"""
WITH params AS (SELECT %s::jsonb AS doc),
original AS (
    -- The messages that have an edit or a deletion (most new messages have none: nothing is
    -- locked for them), locked in id order (as every path that locks several does: no deadlock).
    SELECT m.id, m.wamid, m.conversation_id FROM {messages} m
    WHERE m.wamid IN (SELECT jsonb_array_elements_text(doc -> 'wamids') FROM params) AND m.type NOT IN {revisions}
      AND EXISTS (SELECT 1 FROM {messages} e WHERE e.context_wamid = m.wamid AND e.type IN {revisions})
    ORDER BY m.id FOR UPDATE
),
revision AS (
    -- Every edit and deletion of each, whenever it came: edits in the order they were written.
    SELECT o.id,
        array_agg(r.text ORDER BY {written}, r.id) FILTER (WHERE r.type = {edit}) AS texts,
        array_agg({written} ORDER BY {written}, r.id) FILTER (WHERE r.type = {edit}) AS ats,
        min({written}) FILTER (WHERE r.type <> {edit}) AS deleted_at
    FROM original o
    JOIN {messages} r ON r.context_wamid = o.wamid AND r.conversation_id = o.conversation_id AND r.type IN {revisions}
    GROUP BY o.id
),
state AS (
    -- What the message is after all of them. Its first text is the first earlier version
    -- once it has been edited, else its text: the same result however often this runs.
    SELECT m.id, coalesce(v.texts[cardinality(v.texts)], m.text) AS text,
        CASE WHEN v.texts IS NULL THEN m.earlier_texts ELSE (
            SELECT jsonb_agg(jsonb_build_object('text', e.text, 'at', e.at) ORDER BY e.n)
            FROM unnest(ARRAY[coalesce(m.earlier_texts -> 0 ->> 'text', m.text)] || v.texts[1:cardinality(v.texts) - 1],
                        ARRAY[coalesce(m.provider_timestamp, m.created_at)] || v.ats[1:cardinality(v.ats) - 1])
                 WITH ORDINALITY AS e(text, at, n)) END AS earlier_texts,
        coalesce(v.ats[cardinality(v.ats)], m.edited_at) AS edited_at, coalesce(m.deleted_at, v.deleted_at) AS deleted_at
    FROM revision v JOIN {messages} m ON m.id = v.id
),
revised AS (
    -- A deleted customer message is handled: its turn, if it has not run yet, finds nothing to do.
    UPDATE {messages} m SET text = s.text, earlier_texts = s.earlier_texts, edited_at = s.edited_at, deleted_at = s.deleted_at,
        handled_at = CASE WHEN s.deleted_at IS NOT NULL AND m.direction = {inbound}
                          THEN coalesce(m.handled_at, (SELECT (doc ->> 'now')::timestamptz FROM params)) ELSE m.handled_at END
    FROM state s
    WHERE m.id = s.id
      AND (m.text, m.earlier_texts, m.edited_at, m.deleted_at)
          IS DISTINCT FROM (s.text, s.earlier_texts, s.edited_at, s.deleted_at)
    RETURNING m.id, m.conversation_id, m.type, m.text, m.deleted_at IS NOT NULL AS deleted
),
bumped AS (
    UPDATE {conversations} c SET revision = c.revision + 1, changed_at = (SELECT (doc ->> 'now')::timestamptz FROM params)
    FROM (SELECT id FROM {conversations} WHERE id IN (SELECT conversation_id FROM revised) ORDER BY id FOR UPDATE) l
    WHERE c.id = l.id
)
SELECT id, conversation_id, type, text, deleted FROM revised ORDER BY id"""


def revisions_apply(cursor: psycopg.Cursor, wamids: Sequence[str]) -> psycopg.Cursor | None:
    """Apply every stored edit and deletion of the messages with these wamids: one statement,
    queued on a cursor of its own (returned, None when there was nothing to do); its rows,
    read after the commit (`revised_read`), are the messages it changed.

    Pass the wamids a delivery's new edits and deletions name AND those of its new messages:
    Meta redelivers out of order, so an edit may be stored before the message it edits, and
    is applied when that message is. The result does not depend on the order they came in
    (the latest edit by Meta's timestamp wins; a deletion stays). The conversation of a
    changed message gets a new revision (the console's polls see it)."""
    if not wamids:
        return None
    revising = psycopg.Cursor(cursor.connection)
    revising.execute(_revisions_apply_sql(), [json_text({"wamids": sorted(set(wamids)), "now": timezone.now()})], prepare=True)
    return revising


@dataclass
class Revised:
    id: int
    conversation_id: int
    type: str
    text: str
    deleted: bool


def revised_read(revising: psycopg.Cursor | None) -> list[Revised]:
    return [Revised(*row) for row in revising.fetchall()] if revising is not None else []


@lru_cache(maxsize=1)
def _previews_revise_sql() -> str:
    messages, conversations = table(Message), table(Conversation)
    return (
        f"UPDATE {conversations} c SET last_message_preview = v.preview, revision = c.revision + 1, changed_at = v.changed_at "
        "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, message_id bigint, preview text, changed_at timestamptz) "
        f"WHERE c.id = v.id AND NOT EXISTS (SELECT 1 FROM {messages} n WHERE n.conversation_id = c.id AND n.id > v.message_id "
        f"AND n.type NOT IN {REVISION_TYPES_SQL})"
    )


def previews_revise(previews: Sequence[dict]) -> None:
    """The conversation list's preview of each revised message (dicts of the conversation's
    id, the message's id, the preview) where it is still its conversation's latest message."""
    if previews:
        now = timezone.now()
        rows = [{**p, "changed_at": now} for p in sorted(previews, key=lambda p: p["id"])]
        with connection.cursor() as cursor:
            cursor.execute(_previews_revise_sql(), [json_text(rows)])
