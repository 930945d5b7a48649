"""Writing collected customer details, with validation and provenance.

Every value is validated before it touches the profile and remembers where it came from
(the AI from which message and how surely, or which staff member). Who may replace what is
decided here, on the locked row (`profile_field_set`):

- a staff member's value is never replaced by the AI;
- the AI's stated value replaces any other value (an earlier AI value, stated or guessed);
- the AI's guess only fills an empty field, so it never replaces anything;
- what the AI took from a message, that message's own extraction may replace, whatever its
  confidence: the customer edited the message, and it now says something else;
- order numbers are appended to, never replaced; a guessed one only when none is known;
- a name the business saved in the WhatsApp Business app's address book (coexistence,
  origin `BUSINESS_APP`) replaces any value but a staff member's, and removing the contact
  there clears only a value the app itself set.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from .models import (
    BUSINESS_APP,
    STANDARD_FIELDS,
    ClientProfile,
    Confidence,
    ExtractedValue,
    FieldSource,
    ProfileFieldChange,
)

logger = logging.getLogger(__name__)

NAME_FIELDS = ("first_name", "last_name")
DEFAULT_ORDER_NUMBER_PATTERN = r"[A-Za-z0-9][A-Za-z0-9\-_/#.]{2,39}"
_LOWER_PARTICLES = {"de", "di", "da", "del", "della", "van", "von", "der", "la", "le", "dos", "das", "du"}


class FieldValueError(ValueError):
    """The value is not acceptable for the field; the message says why, for a person."""


def _title_name(value: str) -> str:
    words = []
    for i, word in enumerate(value.split()):
        if i > 0 and word.lower() in _LOWER_PARTICLES:
            words.append(word.lower())
            continue
        # O'Brien, Anne-Marie, D'Angelo
        words.append(re.sub(r"(^|[-'’])(\w)", lambda m: m.group(1) + m.group(2).upper(), word.lower()))
    return " ".join(words)


def field_value_clean(*, field: str, value: str, order_number_pattern: str = "") -> str:
    """Return the cleaned value or raise FieldValueError."""
    value = " ".join(str(value or "").split())
    if not value:
        return ""
    if field in NAME_FIELDS:
        if len(value) > 120 or not re.fullmatch(r"[^\d@#<>{}\[\]/\\|_=+*$%^~`]+", value):
            raise FieldValueError(gettext("%(value)r does not look like a name.") % {"value": value})
        return _title_name(value)
    if field == "email":
        value = value.strip(".,;:<>()[]").lower()
        try:
            validate_email(value)
        except ValidationError:
            raise FieldValueError(gettext("%(value)r is not a valid email address.") % {"value": value}) from None
        return value
    if field == "company":
        if len(value) > 255:
            raise FieldValueError(gettext("Company name too long."))
        return value
    if field == "order_number":
        pattern = order_number_pattern or DEFAULT_ORDER_NUMBER_PATTERN
        value = value.strip(".,;:")
        if not re.fullmatch(pattern, value):
            raise FieldValueError(gettext("%(value)r is not a valid order number.") % {"value": value})
        return value.upper()
    if len(value) > 500:
        raise FieldValueError(gettext("Value too long."))
    return value


@dataclass
class FieldChange:
    field: str
    old: str
    new: str


# What a field's change writes on the profile's row.
WRITTEN_FIELDS = ("first_name", "last_name", "company", "email", "order_numbers", "extra", "provenance", "updated_at")


def profile_field_set(
    *,
    profile: ClientProfile,
    field: str,
    value: str,
    source: str,
    user=None,
    message=None,
    order_number_pattern: str = "",
    confidence: str = Confidence.STATED,
) -> FieldChange | None:
    """Set one field. Returns the change, or None when nothing changed or the AI may not
    replace the value there (see the module's rules; `confidence` counts for the AI only).
    Raises FieldValueError on a bad value."""
    cleaned = field_value_clean(field=field, value=value, order_number_pattern=order_number_pattern)
    original = profile
    with transaction.atomic():
        # Decided on the locked row: a staff edit or another message's extraction may be
        # writing the same field right now.
        profile = ClientProfile.objects.select_for_update().get(pk=profile.pk)
        change = profile_field_apply(
            profile=profile, field=field, value=cleaned, source=source, user=user, message=message, confidence=confidence
        )
        if change is None:
            return None
        profile.save(update_fields=WRITTEN_FIELDS)
        change.save()
    # Keep the caller's instance current.
    for attr in WRITTEN_FIELDS:
        setattr(original, attr, getattr(profile, attr))
    return FieldChange(field=field, old=change.old_value, new=change.new_value)


def profile_field_apply(
    *,
    profile: ClientProfile,
    field: str,
    value: str,
    source: str,
    user=None,
    message=None,
    confidence: str = Confidence.STATED,
    origin: str = "",
) -> ProfileFieldChange | None:
    """`value` (cleaned already) onto `profile` in memory, when the module's rules let
    `source` (and `origin`, what wrote it for a SYSTEM source) write there: the change to
    store with it, unsaved; None when nothing changes. The caller holds the profile's row
    locked and stores both (`profile_field_set`, or a delivery's own statements)."""
    confidence = Confidence(confidence)
    if not _may_write(profile=profile, field=field, value=value, source=source, confidence=confidence, origin=origin, message=message):
        return None
    old = profile.value_of(field)
    if field == "order_number":
        if not value or value in profile.order_numbers:
            return None
        profile.order_numbers = [*profile.order_numbers, value]
    elif value == old:
        return None
    elif field in STANDARD_FIELDS:
        setattr(profile, field, value)
    else:
        profile.extra = {**profile.extra, field: value}
    now = timezone.now()
    entry = {
        "source": source,
        "message_id": getattr(message, "pk", None),
        "user_id": getattr(user, "pk", None),
        "user": user.get_username() if user else "",
        "at": now.isoformat(),
    }
    if source == FieldSource.AI:
        entry["confidence"] = confidence.value
    if origin:
        entry["origin"] = origin
    profile.provenance = {**profile.provenance, field: entry}
    profile.updated_at = now
    return ProfileFieldChange(
        profile=profile, field=field, old_value=old, new_value=value, source=source, message=message, user=user, created_at=now
    )


def _may_write(
    *, profile: ClientProfile, field: str, value: str, source: str, confidence: Confidence, origin: str, message=None
) -> bool:
    if source == FieldSource.AI:
        return _ai_may_write(profile=profile, field=field, confidence=confidence, message=message)
    if origin == BUSINESS_APP:
        entry = profile.provenance.get(field) or {}
        return entry.get("origin") == BUSINESS_APP if not value else entry.get("source") != FieldSource.STAFF
    return True


def _ai_may_write(*, profile: ClientProfile, field: str, confidence: Confidence, message) -> bool:
    if profile.source_of(field) == FieldSource.STAFF:
        return False
    if message is not None and (profile.provenance.get(field) or {}).get("message_id") == message.pk:
        return True
    # With two strengths, "never by a weaker one" comes down to this: a stated value may
    # replace any value but a staff member's, a guess none at all.
    return confidence == Confidence.STATED or not profile.value_of(field)


def profile_missing_fields(*, profile: ClientProfile, fields: list[str]) -> list[str]:
    return [f for f in fields if not profile.value_of(f)]


def profile_known_fields(*, profile: ClientProfile, fields: list[str]) -> dict[str, str]:
    return {f: profile.value_of(f) for f in fields if profile.value_of(f)}


def profile_update_from_extraction(
    *,
    profile: ClientProfile,
    values: Mapping[str, str | ExtractedValue | None],
    fields: list[str],
    message=None,
    order_number_pattern: str = "",
) -> list[FieldChange]:
    """Apply what the AI (or the offline agent) extracted from a customer message.

    `values` by field: an `ExtractedValue` carries its confidence; a plain string (the
    model's structured extraction) counts as stated. Only configured fields are taken; a
    value that fails validation is dropped (and logged), never stored; what may replace what
    is `profile_field_set`'s rule.
    """
    changes = []
    for field in fields:
        extracted = values.get(field)
        if not isinstance(extracted, ExtractedValue):
            extracted = ExtractedValue(value=str(extracted or ""))
        if not extracted.value.strip():
            continue
        try:
            change = profile_field_set(
                profile=profile,
                field=field,
                value=extracted.value,
                source=FieldSource.AI,
                message=message,
                order_number_pattern=order_number_pattern,
                confidence=extracted.confidence,
            )
        except FieldValueError as exc:
            logger.info("profile %s: extracted %s rejected: %s", profile.pk, field, exc)
            continue
        if change:
            changes.append(change)
    return changes


def language_code(value: str | None) -> str:
    """The two-letter language code in `value` ("" when there is none)."""
    code = (value or "").strip().lower()[:2]
    return code if len(code) == 2 and code.isalpha() else ""


def profile_language_set(*, profile: ClientProfile, language: str) -> None:
    """Remember the language the customer writes in (two-letter code)."""
    language = language_code(language)
    if language and language != profile.language:
        ClientProfile.objects.filter(pk=profile.pk).update(language=language)
        profile.language = language
