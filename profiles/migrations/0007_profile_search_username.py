"""The profile search index covers the username too (a customer without a number is found by
its @username). The expression must stay identical to `profiles.selectors.PROFILE_SEARCH_SQL`;
the index is rebuilt without locking the table (CONCURRENTLY), under a new name first so a
search always has one."""

from django.db import migrations

OLD = "UPPER(first_name || ' ' || last_name || ' ' || profile_name || ' ' || company || ' ' || email || ' ' || wa_id)"
NEW = (
    "UPPER(first_name || ' ' || last_name || ' ' || profile_name || ' ' || company || ' ' || email || ' ' || wa_id"
    " || ' ' || username)"
)


def _rebuild(schema_editor, expression: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS profile_search_trgm_new_idx")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY profile_search_trgm_new_idx ON profiles_clientprofile USING gin (({expression}) gin_trgm_ops)"
    )
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS profile_search_trgm_idx")
    schema_editor.execute("ALTER INDEX profile_search_trgm_new_idx RENAME TO profile_search_trgm_idx")


def forwards(apps, schema_editor):
    _rebuild(schema_editor, NEW)


def backwards(apps, schema_editor):
    _rebuild(schema_editor, OLD)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("profiles", "0006_customer_identities")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
