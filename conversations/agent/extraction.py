"""Structured extraction of the customer's details from what they write.

A separate call from the reply (`responses.parse` with a pydantic model built from the
configured fields, not stored in the OpenAI conversation), so a failing extraction never
blocks the reply and vice versa. Without an API key the offline rules do the same job.
Every value goes through `profile_update_from_extraction`: validated, with provenance,
never over a staff member's value.
"""

from __future__ import annotations

import functools
import logging
from typing import Optional

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, create_model

from profiles.services import FieldChange, profile_language_set, profile_update_from_extraction

from ..models import BotConfig, Message
from ..services import fastpath
from . import offline, openai_client
from .prompts import EXTRACTION_INSTRUCTIONS, FIELD_DESCRIPTIONS, cost_estimate

logger = logging.getLogger(__name__)


class _Details(BaseModel):
    """Base of the extraction models: nothing but the declared fields."""

    model_config = ConfigDict(extra="forbid")


@functools.lru_cache(maxsize=64)
def _details_model(fields: tuple[tuple[str, str], ...]) -> type[BaseModel]:
    definitions = {
        key: (Optional[str], Field(default=None, description=description)) for key, description in fields
    }
    definitions["language"] = (Optional[str], Field(default=None, description="ISO 639-1 code, e.g. it, en."))
    return create_model("CustomerDetails", __base__=_Details, **definitions)


def details_model_for(*, config: BotConfig, fields: list[str]) -> type[BaseModel]:
    extra = {f.get("key"): f for f in config.extra_fields or [] if isinstance(f, dict)}
    described = []
    for key in fields:
        if key in FIELD_DESCRIPTIONS:
            described.append((key, FIELD_DESCRIPTIONS[key]))
        else:
            info = extra.get(key) or {}
            described.append((key, str(info.get("description") or info.get("label") or key)))
    return _details_model(tuple(described))


def details_extract(*, message: Message, config: BotConfig, fields: list[str], usage_out: dict | None = None) -> list[FieldChange]:
    """Extract and store the configured fields found in one customer message. Never raises
    for an AI failure (logged and recorded on the message instead). `usage_out`: the call's
    usage (the fields of `fastpath.message_usage_set`) goes in this dict for the caller to
    store, instead of being written to the message here."""
    if not message.text.strip() or not fields:
        return []
    if openai_client.ai_configured():
        try:
            values = _extract_with_openai(message=message, config=config, fields=fields, usage_out=usage_out)
        except openai_client.AIError as exc:
            logger.warning("message %s: extraction failed: %s", message.pk, exc)
            return []
    else:
        values = offline.details_extract(text=message.text)
    return details_store(message=message, config=config, fields=fields, values=values)


def details_store(*, message: Message, config: BotConfig, fields: list[str], values: dict) -> list[FieldChange]:
    """Apply extracted values to the message's profile (validated, with provenance)."""
    profile = message.conversation.profile
    if values.get("language"):
        profile_language_set(profile=profile, language=values["language"])
    return profile_update_from_extraction(
        profile=profile, values=values, fields=fields, message=message, order_number_pattern=config.order_number_pattern
    )


def details_store_needed(*, message: Message, fields: list[str], values: dict) -> bool:
    """Whether `details_store` has anything to write (a new language or a found field):
    most texts hold nothing new, and then the database is not touched at all."""
    language = (values.get("language") or "").strip().lower()[:2]
    if len(language) == 2 and language != message.conversation.profile.language:
        return True
    return any(values.get(f) and str(values[f]).strip() for f in fields)


def extraction_request(*, message: Message, config: BotConfig, fields: list[str]) -> dict:
    """The `responses.parse` call's arguments for one customer text."""
    return {
        "model": settings.OPENAI_EXTRACTION_MODEL or config.model or settings.OPENAI_MODEL,
        "instructions": EXTRACTION_INSTRUCTIONS,
        "input": [{"role": "user", "content": message.text}],
        "text_format": details_model_for(config=config, fields=fields),
        "store": False,
    }


def extraction_result(answer: openai_client.Answer) -> tuple[dict, dict]:
    """The extracted values and the call's usage (the fields of `fastpath.message_usage_set`)."""
    parsed = answer.output_parsed
    if parsed is None:
        raise openai_client.AIError("The extraction came back empty.", permanent=True)
    usage = answer.usage
    # The extraction's cost is the customer message's (the reply's is the bot message's).
    return parsed.model_dump(), {
        "ai_model": usage.model[:64],
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": cost_estimate(
            model=usage.model, input_tokens=usage.input_tokens, cached_tokens=usage.cached_tokens, output_tokens=usage.output_tokens
        ),
    }


def _extract_with_openai(*, message: Message, config: BotConfig, fields: list[str], usage_out: dict | None) -> dict[str, str | None]:
    answer = openai_client.response_parse(**extraction_request(message=message, config=config, fields=fields))
    values, usage = extraction_result(answer)
    if usage_out is not None:
        usage_out.update(usage)
    elif fastpath.enabled():
        fastpath.message_usage_set(message_id=message.pk, **usage)
    else:
        Message.objects.filter(pk=message.pk).update(**usage)
    return values
