"""The OpenAI models the bot uses and when OpenAI shuts them down.

The beat's check (`tasks.model_shutdowns_check`, hourly) lists OpenAI's models; what it read is
kept in Django's cache, where admin reads it (admin never waits on OpenAI), and each model in
use that shuts down within MODEL_SHUTDOWN_NOTICE, or that OpenAI does not list, is an alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from ..agent.replies import model_for
from ..models import AlertKind, BotConfig
from .alerts import alert_raise, alerts_resolve

CACHE_KEY = "openai:model-shutdowns"
MODEL_SHUTDOWN_NOTICE = timedelta(days=30)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelShutdowns:
    """What `GET /v1/models` said at `checked_at`: every listed model and its shutdown day
    (None: none announced)."""

    checked_at: datetime
    dates: dict[str, date | None]


def models_in_use() -> set[str]:
    """The models the bot answers, extracts and transcribes with: each active configuration's,
    OPENAI_MODEL (a blank one's), OPENAI_EXTRACTION_MODEL and OPENAI_TRANSCRIBE_MODEL."""
    models = {model_for(config) for config in BotConfig.objects.filter(is_active=True).only("model")}
    models.add(settings.OPENAI_MODEL)
    if settings.OPENAI_EXTRACTION_MODEL:
        models.add(settings.OPENAI_EXTRACTION_MODEL)
    models.add(settings.OPENAI_TRANSCRIBE_MODEL)
    return models


def model_shutdowns_record(*, dates: dict[str, date | None]) -> list[str]:
    """Keep `dates` (OpenAI's list) for admin; alert on each model in use that shuts down
    within MODEL_SHUTDOWN_NOTICE or is not listed, resolve the others' alerts (and the
    refusals of models no longer in use). The models alerted on."""
    now = timezone.now()
    cache.set(CACHE_KEY, {"checked_at": now.isoformat(), "dates": {m: d.isoformat() if d else None for m, d in dates.items()}}, None)
    in_use, alerted = models_in_use(), []
    for model in sorted(in_use):
        text = _shutdown_alert_text(model=model, dates=dates, today=now.date())
        if text:
            alert_raise(kind=AlertKind.MODEL_SHUTDOWN, subject=model, text=text)
            alerted.append(model)
    alerts_resolve(kind=AlertKind.MODEL_SHUTDOWN, keep=set(alerted))
    alerts_resolve(kind=AlertKind.MODEL_REFUSED, keep=in_use)
    return alerted


def _shutdown_alert_text(*, model: str, dates: dict[str, date | None], today: date) -> str:
    if model not in dates:
        return f"OpenAI does not list {model} among the models this API key may use: its requests will be refused. {model_replace_hint(model)}"
    day = dates[model]
    if day is None or day - today > MODEL_SHUTDOWN_NOTICE:
        return ""
    when = "was shut down" if day <= today else f"shuts down in {(day - today).days} day(s)"
    return f"OpenAI {when} on {day.isoformat()}: {model}. {model_replace_hint(model)}"


def model_replace_hint(model: str) -> str:
    """Where an admin changes `model`: the transcription model is a setting of its own."""
    if model == settings.OPENAI_TRANSCRIBE_MODEL:
        return "Choose another transcription model (OPENAI_TRANSCRIBE_MODEL)."
    return "Choose another model in the bot configuration (or OPENAI_MODEL)."


def model_shutdowns_known() -> ModelShutdowns | None:
    """What the last check read, without asking OpenAI; None before the first one, or when
    the cache cannot be read (the bot configuration page still opens with Redis down)."""
    try:
        kept = cache.get(CACHE_KEY)
    except Exception:  # any cache backend's own error: what it kept is simply not known now
        logger.warning("the models' shutdown dates could not be read from the cache", exc_info=True)
        return None
    if not kept:
        return None
    dates = {model: date.fromisoformat(day) if day else None for model, day in kept["dates"].items()}
    return ModelShutdowns(checked_at=datetime.fromisoformat(kept["checked_at"]), dates=dates)
