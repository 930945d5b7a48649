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

from django.db import connection, models
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
