"""Customers' choices about categories of messages (`integrations.base.PreferenceChange`),
stored with the delivery that brought them: each choice in the customer's history
(`ProfilePreferenceChange`, once however often it is redelivered) and the latest marketing
choice on the profile (`ClientProfile.marketing_messages`).

The latest is the one the customer made last, not the one that arrived last: Meta retries a
delivery for days, so an older "resume" can come after a newer "stop". Two choices stamped
the same second leave "stop": in doubt, no marketing.

A customer is found by any identity the preference carries (`ingest.profile_key_of`). One
never seen gets a profile and no conversation (`ingest.profiles_locked`): the choice is
their consent, and a conversation opened later must find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import psycopg
from django.utils import timezone

from integrations.base import PreferenceChange
from profiles.models import MARKETING_MESSAGES, ClientProfile, MarketingChoice, ProfilePreferenceChange

from ..database import json_text
from . import literal, table
from .ingest import identity_row, profile_key_of, profiles_locked


def preferences_store(cursor: psycopg.Cursor, preferences: Sequence[PreferenceChange]) -> None:
    """The customers' profiles (created when missing, locked in key order), then one
    statement, queued: the history and each profile's latest choice."""
    if not preferences:
        return
    identities = [identity_row(p.customer) for p in preferences]
    profiles_locked(cursor, identities=identities)
    rows = [
        {**identity, "category": p.category, "value": p.value, "detail": p.detail, "at": p.timestamp}
        for identity, p in zip(identities, preferences)
    ]
    cursor.execute(_apply_sql(), [timezone.now(), json_text(rows)], prepare=True)


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
FROM latest l
WHERE p.id = l.profile_id
  AND (p.marketing_messages_at IS NULL OR l.at > p.marketing_messages_at
       OR (l.at = p.marketing_messages_at AND l.value = {stop}))"""
