"""Alerts: what only an admin can fix (a model OpenAI refuses or is about to shut down), kept
in the database and shown in admin until resolved. One row per kind and subject, so a refusal
that every customer message meets is one alert that counts, not thousands."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Alert, AlertKind


def alert_raise(*, kind: AlertKind, subject: str, text: str) -> None:
    """Open the alert of `kind` about `subject` (again), with `text`, or count it once more."""
    now, subject = timezone.now(), subject[:128]
    values = {"text": text, "last_at": now, "resolved_at": None}
    if Alert.objects.filter(kind=kind, subject=subject).update(count=F("count") + 1, **values):
        return
    try:
        with transaction.atomic():
            Alert.objects.create(kind=kind, subject=subject, first_at=now, **values)
    except IntegrityError:  # raised by another worker in the meantime
        Alert.objects.filter(kind=kind, subject=subject).update(count=F("count") + 1, **values)


def alerts_resolve(*, kind: AlertKind, keep: set[str] = frozenset()) -> int:
    """Resolve the open alerts of `kind` except those about `keep`; how many."""
    return Alert.objects.filter(kind=kind, resolved_at__isnull=True).exclude(subject__in=keep).update(resolved_at=timezone.now())


def alerts_open() -> list[Alert]:
    return list(Alert.objects.filter(resolved_at__isnull=True).order_by("-last_at"))
