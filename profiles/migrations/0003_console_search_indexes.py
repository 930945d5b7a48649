"""Trigram indexes for the console's search (PostgreSQL only; SQLite scans).

The console searches with Django's `icontains`, which PostgreSQL runs as
`UPPER(col::text) LIKE UPPER('%q%')`; a GIN `gin_trgm_ops` index on `UPPER(col)` serves
exactly that expression, so a search is a bitmap index scan instead of a scan of every
profile and every message.

The index on `conversations_message.text` lives here, not in the conversations app,
because only the console needs it and the conversations migrations belong to another
part of the project: it depends on `conversations.0002_initial`, which creates the table.

Built CONCURRENTLY (hence `atomic = False`) so that running this on a live database does
not block the webhook's inserts while the index builds. Creating the pg_trgm extension
needs a role allowed to (a superuser, or the database owner on PostgreSQL 13+ as it is a
trusted extension).
"""

from django.db import migrations

PROFILE_COLUMNS = ("first_name", "last_name", "profile_name", "company", "email", "wa_id")


def _statements():
    yield "CREATE EXTENSION IF NOT EXISTS pg_trgm"
    for column in PROFILE_COLUMNS:
        yield (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS profile_{column}_trgm_idx "
            f"ON profiles_clientprofile USING gin (UPPER({column}) gin_trgm_ops)"
        )
    yield (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS msg_text_trgm_idx "
        "ON conversations_message USING gin (UPPER(text) gin_trgm_ops)"
    )


def _reverse_statements():
    for column in PROFILE_COLUMNS:
        yield f"DROP INDEX CONCURRENTLY IF EXISTS profile_{column}_trgm_idx"
    yield "DROP INDEX CONCURRENTLY IF EXISTS msg_text_trgm_idx"


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in _statements():
        schema_editor.execute(sql)


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in _reverse_statements():
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("profiles", "0002_staffpreference"),
        ("conversations", "0002_initial"),
    ]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
