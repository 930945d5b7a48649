"""Customers' choices about categories of messages (`integrations.base.PreferenceChange`),
stored with the delivery that brought them: each choice in the customer's history
(`ProfilePreferenceChange`, once however often it is redelivered) and the latest marketing
choice on the profile (`ClientProfile.marketing_messages`).

The latest is the one the customer made last, not the one that arrived last: Meta retries a
delivery for days, so an older "resume" can come after a newer "stop". Two choices stamped
the same second leave "stop": in doubt, no marketing.

A customer is found by any identity the preference carries (`ingest.profile_key_of`). One
never seen gets a profile and no conversation: the choice is their consent, and a
conversation opened later must find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import psycopg
from django.utils import timezone

from integrations.base import PreferenceChange
from profiles.models import MARKETING_MESSAGES, ClientProfile, MarketingChoice, ProfilePreferenceChange

from ..database import json_text
from . import literal, quote, row_values, table
from .ingest import profile_key_of


def preferences_store(cursor: psycopg.Cursor, preferences: Sequence[PreferenceChange]) -> None:
    """Two statements, queued: the profiles of customers not known yet, then the history
    and each profile's latest choice."""
    if not preferences:
        return
    now = timezone.now()
    customers = dict.fromkeys(p.customer for p in preferences)
    profiles = [
        ClientProfile(
            key=ClientProfile.key_for(user_id=c.user_id, wa_id=c.phone), wa_id=c.phone, user_id=c.user_id,
            parent_user_id=c.parent_user_id, username=c.username, created_at=now, updated_at=now,
        )  # fmt: skip
        for c in customers
    ]
    cursor.execute(_profiles_sql(), [json_text([row_values(p) for p in profiles])], prepare=True)
    rows = [
        {
            "key": ClientProfile.key_for(user_id=p.customer.user_id, wa_id=p.customer.phone),
            "wa_id": p.customer.phone,
            "user_id": p.customer.user_id,
            "category": p.category,
            "value": p.value,
            "detail": p.detail,
            "at": p.timestamp,
        }
        for p in preferences
    ]
    cursor.execute(_apply_sql(), [now, json_text(rows)], prepare=True)


@lru_cache(maxsize=1)
def _profiles_sql() -> str:
    profiles = table(ClientProfile)
    columns = [quote(f.column) for f in ClientProfile._meta.concrete_fields if not f.primary_key]
    # A profile another delivery creates meanwhile (any of its unique identities) wins.
    return (
        f"INSERT INTO {profiles} ({', '.join(columns)}) SELECT {', '.join('r.' + c for c in columns)} "
        f"FROM jsonb_array_elements(%s::jsonb) AS e, jsonb_populate_record(NULL::{profiles}, e.value) AS r "
        f"WHERE {profile_key_of('r')} = r.key ORDER BY r.key ON CONFLICT DO NOTHING"
    )


@lru_cache(maxsize=1)
def _apply_sql() -> str:
    profiles, changes = table(ClientProfile), table(ProfilePreferenceChange)
    stop = literal(MarketingChoice.STOP)
    return f"""
WITH params AS (SELECT %s::timestamptz AS now),
given AS (
    SELECT v.*, {profile_key_of('v')} AS profile_key
    FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (key text, wa_id text, user_id text, category text, value text,
                                                       detail text, at timestamptz)) WITH ORDINALITY
         AS v(key, wa_id, user_id, category, value, detail, at, position)
),
chosen AS (
    SELECT g.*, p.id AS profile_id FROM given g JOIN {profiles} p ON p.key = g.profile_key
),
history AS (
    INSERT INTO {changes} (profile_id, category, value, detail, at, created_at)
    SELECT c.profile_id, c.category, c.value, c.detail, c.at, (SELECT now FROM params) FROM chosen c ORDER BY c.position
    ON CONFLICT DO NOTHING
),
latest AS (
    SELECT DISTINCT ON (c.profile_id) c.profile_id, c.value, c.at FROM chosen c
    WHERE c.category = {literal(MARKETING_MESSAGES)}
    ORDER BY c.profile_id, c.at DESC, c.value = {stop} DESC
)
UPDATE {profiles} p SET marketing_messages = l.value, marketing_messages_at = l.at, updated_at = (SELECT now FROM params)
FROM latest l,
     -- Locked in key order, as the ingest statement locks them: no deadlock between the two.
     (SELECT id FROM {profiles} WHERE id IN (SELECT profile_id FROM latest) ORDER BY key FOR UPDATE) k
WHERE p.id = k.id AND l.profile_id = k.id
  AND (p.marketing_messages_at IS NULL OR l.at > p.marketing_messages_at
       OR (l.at = p.marketing_messages_at AND l.value = {stop}))"""
