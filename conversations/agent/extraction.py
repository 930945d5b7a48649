"""Structured extraction of the customer's details from what they write.

A call of its own beside the reply (`responses.create` whose text format is the strict JSON
schema of a pydantic model built from the configured fields, not stored in the OpenAI
conversation; the answer's text validated into that model), so a failing extraction never
blocks the reply and the other way round. Without an API key the offline rules do the same
job. What is found is stored by the profiles service, validated and with provenance.
"""

from __future__ import annotations

import functools
from typing import Optional

from django.conf import settings
from openai.lib import type_to_response_format_param
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from integrations.redaction import redact

from .openai_client import AIError
from .prompts import EXTRACTION_INSTRUCTIONS, FIELD_DESCRIPTIONS, customer_input
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


@functools.lru_cache(maxsize=64)
def _text_format(model: type[BaseModel]) -> dict:
    # The SDK's own strict JSON schema of the model (what `responses.parse(text_format=...)`
    # sends), made once per model rather than on every call; the Chat Completions shape it
    # builds, in the Responses API's.
    return {"type": "json_schema", **type_to_response_format_param(model)["json_schema"]}


def extraction_request(*, text: str, config, fields: list[str]) -> dict:
    """The `responses.create` arguments for one customer text."""
    return {
        "model": settings.OPENAI_EXTRACTION_MODEL or model_for(config),
        "instructions": EXTRACTION_INSTRUCTIONS,
        "input": customer_input([text]),
        "text": {"format": _text_format(details_model_for(config=config, fields=fields))},
        "store": False,
    }


def extraction_result(response, *, config, fields: list[str]) -> tuple[dict, dict]:
    """The extracted values (the answer's text validated into the fields' model) and the
    call's usage fields (the customer message's: the reply's cost is the bot message's)."""
    text = (response.output_text or "").strip()
    if not text:
        raise AIError("The extraction came back empty.", permanent=True)
    try:
        values = details_model_for(config=config, fields=fields).model_validate_json(text)
    except ValidationError as exc:
        raise AIError(f"OpenAI's structured answer did not match the schema: {redact(str(exc))[:300]}", permanent=True) from None
    return values.model_dump(), usage_fields(response)
