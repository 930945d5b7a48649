"""Times Meta cannot have stamped, stored before the parser refused them (before 2009, or in
the future: a year-9999 message made the thread page and the admin lists answer 500 for
everyone). A message's provider time becomes unknown, as the parser reads it now; the
thread and profile times it moved take the time the row was written."""

from django.db import migrations

# As `integrations.meta.parser` (EARLIEST, CLOCK_SKEW): a day's margin, the migration may run late.
IMPOSSIBLE = "({column} < '2009-01-01' OR {column} > now() + interval '1 day')"


def _sql() -> str:
    statements = [
        f"UPDATE conversations_message SET provider_timestamp = NULL WHERE {IMPOSSIBLE.format(column='provider_timestamp')}"
    ]
    for column in ("last_inbound_at", "last_message_at"):
        statements.append(
            f"UPDATE conversations_conversation SET {column} = LEAST(changed_at, now()) WHERE {IMPOSSIBLE.format(column=column)}"
        )
    for column in ("first_contact_at", "last_contact_at"):
        statements.append(
            f"UPDATE profiles_clientprofile SET {column} = LEAST(created_at, now()) WHERE {IMPOSSIBLE.format(column=column)}"
        )
    return ";\n".join(statements)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0011_message_origin"),
        ("profiles", "0007_profile_search_username"),
    ]

    operations = [migrations.RunSQL(_sql(), migrations.RunSQL.noop)]
