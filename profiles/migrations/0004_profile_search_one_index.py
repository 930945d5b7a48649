"""One trigram index over every searchable profile field, instead of one per field.

With an index per column, PostgreSQL has to OR five bitmap scans and, on real data, often
prefers a sequential scan of every profile (~250 ms at 100,000 profiles). One expression
index over the concatenated fields is one bitmap scan, and it also finds a full name typed
across first and last name ("giulia russo"). The expression must stay identical to
`profiles.selectors.PROFILE_SEARCH_SQL`.
"""

from django.db import migrations

EXPRESSION = "UPPER(first_name || ' ' || last_name || ' ' || profile_name || ' ' || company || ' ' || email || ' ' || wa_id)"
OLD_COLUMNS = ("first_name", "last_name", "profile_name", "company", "email", "wa_id")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS profile_search_trgm_idx ON profiles_clientprofile USING gin (({EXPRESSION}) gin_trgm_ops)"
    )
    for column in OLD_COLUMNS:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS profile_{column}_trgm_idx")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in OLD_COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS profile_{column}_trgm_idx "
            f"ON profiles_clientprofile USING gin (UPPER({column}) gin_trgm_ops)"
        )
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS profile_search_trgm_idx")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("profiles", "0003_console_search_indexes")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
