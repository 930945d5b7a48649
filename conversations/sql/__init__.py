"""The hot statements, one module per aggregate; each is the only implementation of what it does.

- `ingest`: a webhook delivery's profiles, conversations, messages and thread state, and the
  delivery's own record (the web process, on Django's connection, inside the group commit);
- `status`: delivery statuses stored and applied (the web process; the worker's delivery and
  the sweeper apply those that came before their message's wamid);
- `claim`: a customer message claimed and read with everything its turn needs (the turn);
- `reply`: the turn's commit, "sent", usage, lease renewal (the turn and the deliveries).

`ingest` and `status` run on Django's sync connection; `claim` and `reply` on the event loop
(`conversations.database`). Everything else goes through the ORM. The helpers here build
statement texts and model instances from the models' own metadata, once per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import BinaryField, JSONField, Model

from ..models import REVISION_TYPES, TEXT_TYPES, MediaFile, MediaState, MessageType


@lru_cache(maxsize=1)
def backend():
    """A DatabaseWrapper that never connects, for quoting, casts and value conversion from
    any thread or loop task (each loop task would otherwise get a wrapper of its own from
    `connections`: a dozen objects in reference cycles per text for the collector)."""
    return connections.create_connection(DEFAULT_DB_ALIAS)


def quote(name: str) -> str:
    return backend().ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def literal(value: str) -> str:
    """A SQL literal for one of the code's own constants (choices), never for data."""
    assert "'" not in value and "\\" not in value
    return f"'{value}'"


TEXT_TYPES_SQL = "(" + ", ".join(literal(t) for t in TEXT_TYPES) + ")"
REVISION_TYPES_SQL = "(" + ", ".join(literal(t) for t in REVISION_TYPES) + ")"


def words_sql(alias: str) -> str:
    """Whether the message `alias` is words the agent answers: a text, a voice note once
    transcribed, an image once stored when the model sees images (`Message.words`;
    UNDERSTOOD_MEDIA_TYPES). The burst and the commit's "a newer one waits" both ask it; the
    statement's `%(images)s` parameter says whether the model sees images (the offline agent
    acknowledges them, so a stored image must not hold back the answer to an earlier text)."""
    return f"""({alias}.type IN {TEXT_TYPES_SQL}
        OR ({alias}.type = {literal(MessageType.AUDIO)} AND {alias}.transcript <> '')
        OR ({alias}.type = {literal(MessageType.IMAGE)} AND %(images)s::boolean AND EXISTS (
            SELECT 1 FROM {table(MediaFile)} f WHERE f.message_id = {alias}.id AND f.state = {literal(MediaState.STORED)})))"""


@dataclass(frozen=True)
class Columns:
    """A model's columns in a select list, and how to turn them back into an instance."""

    model: type[Model]
    names: tuple[str, ...]  # attnames, in select order
    sql: str  # alias."column", ...
    converters: tuple  # (position, converter) for the fields that need one (JSON)

    def instance(self, values: list) -> Model:
        db = backend()
        for i, converter in self.converters:
            values[i] = converter(values[i], None, db)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.names, values)


@lru_cache(maxsize=None)
def columns(model: type[Model], alias: str, without: tuple[str, ...] = ()) -> Columns:
    db = backend()
    fields = [f for f in model._meta.concrete_fields if f.name not in without]
    converters = tuple(
        (i, converter) for i, f in enumerate(fields) for converter in f.get_db_converters(db) if converter is not None
    )
    return Columns(
        model=model,
        names=tuple(f.attname for f in fields),
        sql=", ".join(f"{alias}.{quote(f.column)}" for f in fields),
        converters=converters,
    )


def row_values(instance: Model) -> dict:
    """An unsaved instance's row without its primary key, as JSON-ready column values (for
    `jsonb_populate_record`, `jsonb_to_recordset`)."""
    db = backend()
    return {f.column: _json_ready(f, getattr(instance, f.attname), db) for f in type(instance)._meta.concrete_fields if not f.primary_key}


def _json_ready(field, value, db):
    if isinstance(field, JSONField):
        return value  # JSON already
    if isinstance(field, BinaryField) and value is not None:
        return "\\x" + bytes(value).hex()  # bytea's text form
    return field.get_db_prep_save(value, db)


@contextmanager
def pipelined_transaction(*, health_check: bool = True) -> Iterator[psycopg.Cursor]:
    """A psycopg cursor on Django's connection, in pipeline mode, inside one transaction
    (for `ingest`'s and `status`'s statements).

    Django's cursors wait for every statement, BEGIN and COMMIT included. In pipeline mode
    BEGIN goes out with the first statement whose result is read, and the statements after
    it go out with the COMMIT: a webhook POST costs two round trips. Statements are sent
    with server-side binding and prepared once per connection (`prepare=True`; the policy
    is the connection's: settings' OPTIONS). Inside an atomic block (a test's, a caller's)
    it is a savepoint of that transaction. Work to do after the commit goes through
    `transaction.on_commit` as usual. On an error the transaction is rolled back with
    psycopg's own `rollback()`, outside the pipeline.

    `health_check=False` skips CONN_HEALTH_CHECKS' `SELECT 1` (one more round trip), for a
    caller that reconnects and retries when its first round trip finds the connection dead.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.in_atomic_block:
        with transaction.atomic(using=db.alias), db.wrap_database_errors:
            with db.connection.pipeline():
                yield psycopg.Cursor(db.connection)
        return
    if health_check:
        db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        conn = db.connection
        # Not closed on exit: the results of queued statements are read after the commit.
        cursor = psycopg.Cursor(conn)
        try:
            # BEGIN and COMMIT as statements of the pipeline (Django keeps the connection in
            # autocommit mode outside atomic blocks): psycopg's `transaction()` would nest a
            # pipeline, and each nested exit is one more round trip.
            with conn.pipeline():
                conn.execute(b"BEGIN")
                yield cursor
                conn.execute(b"COMMIT")
        except BaseException:
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                try:
                    conn.rollback()
                except psycopg.Error:
                    db.close()  # a broken connection: the next request opens another
            raise
