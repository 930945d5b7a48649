"""Structured extraction of the customer's details from what they write.

A call of its own beside the reply (`responses.parse` with a pydantic model built from the
configured fields, not stored in the OpenAI conversation), so a failing extraction never
blocks the reply and the other way round. Without an API key the offline rules do the same
job. What is found is stored by the profiles service, validated and with provenance.
"""

from __future__ import annotations

import functools
from typing import Optional

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, create_model

from .openai_client import AIError
from .prompts import EXTRACTION_INSTRUCTIONS, FIELD_DESCRIPTIONS
from .replies import model_for, usage_fields


class _Details(BaseModel):
    """Base of the extraction models: nothing but the declared fields."""

    model_config = ConfigDict(extra="forbid")


@functools.lru_cache(maxsize=64)
def _details_model(fields: tuple[tuple[str, str], ...]) -> type[BaseModel]:
    definitions = {key: (Optional[str], Field(default=None, description=description)) for key, description in fields}
    definitions["language"] = (Optional[str], Field(default=None, description="ISO 639-1 code, e.g. it, en."))
    return create_model("CustomerDetails", __base__=_Details, **definitions)


def details_model_for(*, config, fields: list[str]) -> type[BaseModel]:
    extra = {f.get("key"): f for f in config.extra_fields or [] if isinstance(f, dict)}
    described = []
    for key in fields:
        if key in FIELD_DESCRIPTIONS:
            described.append((key, FIELD_DESCRIPTIONS[key]))
        else:
            info = extra.get(key) or {}
            described.append((key, str(info.get("description") or info.get("label") or key)))
    return _details_model(tuple(described))


def extraction_request(*, text: str, config, fields: list[str]) -> dict:
    """The `responses.parse` arguments for one customer text."""
    return {
        "model": settings.OPENAI_EXTRACTION_MODEL or model_for(config),
        "instructions": EXTRACTION_INSTRUCTIONS,
        "input": [{"role": "user", "content": text}],
        "text_format": details_model_for(config=config, fields=fields),
        "store": False,
    }


def extraction_result(response) -> tuple[dict, dict]:
    """The extracted values and the call's usage fields (the customer message's: the
    reply's cost is the bot message's)."""
    parsed = response.output_parsed
    if parsed is None:
        raise AIError("The extraction came back empty.", permanent=True)
    return parsed.model_dump(), usage_fields(response)
