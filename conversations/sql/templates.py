"""What Meta says about a business account's message templates, applied in ONE statement:
the sync's full listing and the template webhooks' single changes alike (`templates_apply`).

Each of status (with its reason), quality and category is applied only when what is given
is at least as new as what set the stored one (`status_at`, `quality_at`, `category_at`):
Meta retries a webhook for days, so a PAUSED raised before an APPROVED can arrive after it
and must not roll the template back. A sync's values carry the time its listing was asked
for. A template the statement has not seen before is inserted with what is given; it has
no components until a sync lists it (`synced_at` stays empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import psycopg
from django.utils import timezone

from ..database import json_text
from ..models import MessageTemplate
from . import table

# The aspects a row may carry, each with the time that orders it: (columns, time column).
_ASPECTS = ((("status", "reason"), "status_at"), (("quality_score",), "quality_at"), (("category",), "category_at"))


@dataclass(frozen=True)
class Applied:
    id: int
    business_account_id: str
    created: bool
    synced: bool  # has its components (a sync listed it)


def templates_apply(cursor: psycopg.Cursor, rows: Sequence[dict]) -> list[Applied]:
    """Upsert templates by (business account, name, language). A row has those three keys
    and any of: `template_id`; `status` + `reason` + `status_at`; `quality_score` +
    `quality_at`; `category` + `category_at`; `components` + `parameter_format` +
    `synced_at` (a sync's). Several rows for one template are merged first, the newest of
    each aspect winning (one statement may not update a row twice)."""
    merged = _merged(rows)
    if not merged:
        return []
    cursor.execute(_apply_sql(), [timezone.now(), json_text(merged)], prepare=True)
    return [Applied(*row) for row in cursor.fetchall()]


def _merged(rows: Sequence[dict]) -> list[dict]:
    by_key: dict[tuple, dict] = {}
    for row in rows:
        key = (row["business_account_id"], row["name"], row["language"])
        into = by_key.setdefault(key, {"business_account_id": key[0], "name": key[1], "language": key[2]})
        if row.get("template_id"):
            into["template_id"] = row["template_id"]
        for columns, at in _ASPECTS:
            if row.get(at) is not None and (into.get(at) is None or _time(row[at]) >= _time(into[at])):
                into.update({c: row.get(c) or "" for c in columns}, **{at: row[at]})
        if row.get("synced_at") is not None:
            into.update(components=row.get("components") or [], parameter_format=row.get("parameter_format") or "", synced_at=row["synced_at"])
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in by_key.values()]


def _time(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _newer(at: str) -> str:
    # A part not given has no time (NULL): never newer.
    return f"(EXCLUDED.{at} IS NOT NULL AND (t.{at} IS NULL OR EXCLUDED.{at} >= t.{at}))"


@lru_cache(maxsize=1)
def _apply_sql() -> str:
    templates = table(MessageTemplate)
    sets = []
    for columns, at in _ASPECTS:
        for column in columns:
            sets.append(f"{column} = CASE WHEN {_newer(at)} THEN EXCLUDED.{column} ELSE t.{column} END")
        sets.append(f"{at} = GREATEST(t.{at}, EXCLUDED.{at})")
    aspects = ",\n    ".join(sets)
    return f"""
WITH params AS (SELECT %s::timestamptz AS now),
given AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v(
        business_account_id text, name text, language text, template_id text, status text, reason text, status_at timestamptz,
        quality_score text, quality_at timestamptz, category text, category_at timestamptz, components jsonb,
        parameter_format text, synced_at timestamptz)
)
INSERT INTO {templates} AS t (
    business_account_id, name, language, template_id, status, reason, status_at, quality_score, quality_at, category,
    category_at, components, parameter_format, synced_at, deleted_at, created_at, updated_at)
SELECT g.business_account_id, g.name, g.language, COALESCE(g.template_id, ''), COALESCE(g.status, ''), COALESCE(g.reason, ''),
       g.status_at, COALESCE(g.quality_score, ''), g.quality_at, COALESCE(g.category, ''), g.category_at,
       COALESCE(g.components, '[]'::jsonb), COALESCE(g.parameter_format, ''), g.synced_at, NULL,
       (SELECT now FROM params), (SELECT now FROM params)
FROM given g
ON CONFLICT (business_account_id, name, language) DO UPDATE SET
    template_id = COALESCE(NULLIF(EXCLUDED.template_id, ''), t.template_id),
    {aspects},
    components = CASE WHEN EXCLUDED.synced_at IS NOT NULL THEN EXCLUDED.components ELSE t.components END,
    parameter_format = CASE WHEN EXCLUDED.synced_at IS NOT NULL THEN EXCLUDED.parameter_format ELSE t.parameter_format END,
    deleted_at = CASE WHEN EXCLUDED.synced_at IS NOT NULL THEN NULL ELSE t.deleted_at END,
    synced_at = COALESCE(EXCLUDED.synced_at, t.synced_at),
    updated_at = EXCLUDED.updated_at
RETURNING t.id, t.business_account_id, (t.xmax = 0) AS created, t.synced_at IS NOT NULL AS synced"""
