"""Reads of client profiles shared by the console and admin."""

from __future__ import annotations

import re

from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from .models import ProfilePreferenceChange

# One text per profile holding every searchable field, so a search is one trigram index scan
# (`profile_search_trgm_idx`, migration profiles/0007, built on exactly this expression).
PROFILE_SEARCH_SQL = (
    "UPPER(first_name || ' ' || last_name || ' ' || profile_name || ' ' || company || ' ' || email || ' ' || wa_id"
    " || ' ' || username)"
)

def profile_preference_changes(*, profile_id: int, limit: int = 5) -> list[ProfilePreferenceChange]:
    """The customer's latest choices about categories of messages, newest first."""
    return list(ProfilePreferenceChange.objects.filter(profile_id=profile_id).order_by("-at", "-id")[:limit])


def profile_search_condition(query: str) -> Q:
    """A condition on ClientProfile: the query inside any of its searchable fields."""
    terms = [query]
    digits = re.sub(r"[\s+\-().]", "", query)
    if digits.isdigit() and len(digits) >= 3 and digits != query:
        terms.append(digits)  # "+39 333 123 4567" finds wa_id 393331234567
    if query.startswith("@") and len(query) > 1:
        terms.append(query[1:])  # "@giulia" finds a username stored with or without its "@"
    condition = Q()
    for term in terms:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        condition |= Q(RawSQL(f"{PROFILE_SEARCH_SQL} LIKE UPPER(%s) ESCAPE '\\'", [pattern], output_field=BooleanField()))
    return condition
