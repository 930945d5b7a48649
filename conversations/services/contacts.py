"""Names from the WhatsApp Business app's address book onto the customers' profiles.

A number shared by the app and the Cloud API (coexistence) tells which contacts its owner
saved, renamed or removed (`integrations.base.ContactUpdate`). The saved name is the name
staff see: first and last name, with provenance SYSTEM and origin `BUSINESS_APP`; who may
replace what is `profiles.services`' rule (never a staff member's value; a removal clears only
what the app set). A contact not known yet gets a profile, so the name is there when its
past chats or its first message come.

It runs in a delivery's own transaction (`conversations.ingest`), on its pipelined cursor,
where Django's ORM cannot write (no row counts before the pipeline syncs): the rows are
locked, changed in memory and written back with that transaction's statements.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg

from integrations.base import ContactUpdate
from profiles.models import BUSINESS_APP, ClientProfile, FieldSource
from profiles.services import WRITTEN_FIELDS, FieldValueError, field_value_clean, profile_field_apply

from ..sql import ingest as ingest_sql

logger = logging.getLogger(__name__)


def contacts_apply(cursor: psycopg.Cursor, updates: Sequence[ContactUpdate]) -> None:
    """Each saved (or removed) contact's name onto its customer's profile, oldest first."""
    if not updates:
        return
    identities = [ingest_sql.identity_row(u.customer) for u in updates]
    profiles = ingest_sql.profiles_locked(cursor, identities=identities)
    by_user_id = {p.user_id: p for p in profiles if p.user_id}
    by_phone = {p.wa_id: p for p in profiles if p.wa_id}
    changed: dict[int, ClientProfile] = {}
    changes = []
    for update in sorted(updates, key=lambda u: u.timestamp):
        profile = by_user_id.get(update.customer.user_id) or by_phone.get(update.customer.phone)
        if profile is None:  # its number moved to another customer meanwhile: nobody to name
            continue
        for field, value in contact_names(update).items():
            try:
                value = field_value_clean(field=field, value=value)
            except FieldValueError as exc:
                logger.info("profile %s: the app's %s not taken: %s", profile.pk, field, exc)
                continue
            change = profile_field_apply(
                profile=profile, field=field, value=value, source=FieldSource.SYSTEM, origin=BUSINESS_APP
            )
            if change is not None:
                changes.append(change)
                changed[profile.pk] = profile
    ingest_sql.profiles_update(cursor, list(changed.values()), WRITTEN_FIELDS)
    if changes:
        ingest_sql.records_insert(cursor, changes)


def contact_names(update: ContactUpdate) -> dict[str, str]:
    """First and last name of a saved contact ("" for both when it was removed). Meta gives
    the full name and the first name; the last name is what the full name has besides it."""
    if update.action == "remove":
        return {"first_name": "", "last_name": ""}
    full, first = " ".join(update.full_name.split()), " ".join(update.first_name.split())
    if not first:
        first, _, last = full.partition(" ")
    else:
        last = full.replace(first, "", 1).strip(" ,")
    return {"first_name": first, "last_name": last}
