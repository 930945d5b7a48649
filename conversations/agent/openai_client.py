"""The agent's access to OpenAI: the official SDK's async client, on its aiohttp transport.

One client per event loop (its connections belong to the loop that opened them). The SDK
retries what waiting can help (timeouts, connection errors, 408, 409, 429, 5xx, honouring
Retry-After) up to OPENAI_MAX_ATTEMPTS tries in all, with its own backoff; what it gives up
on becomes `AIError`, whose `permanent` flag says whether a later try could succeed.
A model OpenAI refuses (not served, or not any more) is permanent and names the model.
Answers are the SDK's typed objects. The API key never appears in an error's text.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import date
from typing import Any

import httpx2
import openai
from django.conf import settings
from openai.types.responses import Response

from integrations.redaction import redact

logger = logging.getLogger(__name__)

# Connections one loop's client may hold at once: every reply and extraction in flight
# holds one while it waits for the model (80 texts/s with a 15 s model: 2,400).
MAX_CONNECTIONS = 4096

# The error codes of a request for a model OpenAI does not serve: `model_not_found` (404 now;
# 400 for the models shut down before 2025), `model_deprecated` (400, some shut-down models).
MODEL_REFUSED_CODES = frozenset({"model_not_found", "model_deprecated"})


class AIError(Exception):
    """A call to OpenAI failed for good. `permanent`: trying later cannot help.
    `refused_model`: the model OpenAI refused, when that is why."""

    def __init__(
        self, message: str, *, permanent: bool, http_status: int | None = None, attempts: int = 1, refused_model: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.permanent, self.http_status, self.attempts = message, permanent, http_status, attempts
        self.refused_model = refused_model

    def __str__(self) -> str:
        return self.message


def ai_configured() -> bool:
    """False: no OPENAI_API_KEY, the offline agent answers."""
    return bool(settings.OPENAI_API_KEY)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple, openai.AsyncOpenAI]] = weakref.WeakKeyDictionary()


def _client() -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    # Keyed by what the settings say, so a test pointing at another server gets a client for it.
    key = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS,
           settings.OPENAI_CONNECT_TIMEOUT_SECONDS, settings.OPENAI_MAX_ATTEMPTS)  # fmt: skip
    kept = _clients.get(loop)
    if kept is not None and kept[0] == key:
        return kept[1]
    timeout = openai.Timeout(settings.OPENAI_TIMEOUT_SECONDS, connect=settings.OPENAI_CONNECT_TIMEOUT_SECONDS)
    client = openai.AsyncOpenAI(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL,
        timeout=timeout,
        max_retries=settings.OPENAI_MAX_ATTEMPTS - 1,
        http_client=openai.DefaultAioHttpClient(
            timeout=timeout, limits=httpx2.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        ),
    )
    if kept is not None:
        loop.create_task(kept[1].close())
    _clients[loop] = (key, client)
    return client


async def close() -> None:
    """Close the running loop's client (its kept connections)."""
    kept = _clients.pop(asyncio.get_running_loop(), None)
    if kept is not None:
        await kept[1].close()


def _error(exc: openai.OpenAIError, *, model: str) -> AIError:
    retried = settings.OPENAI_MAX_ATTEMPTS
    if isinstance(exc, openai.APITimeoutError):
        return AIError("OpenAI did not answer in time.", permanent=False, attempts=retried)
    if isinstance(exc, openai.APIConnectionError):
        return AIError("Could not connect to OpenAI.", permanent=False, attempts=retried)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        temporary = status in (408, 409, 429) or status >= 500
        detail = redact(str(getattr(exc, "message", "") or ""))[:300]
        refused = model if model and exc.code in MODEL_REFUSED_CODES else ""
        return AIError(
            f"OpenAI answered {status}: {detail}", permanent=not temporary, http_status=status, attempts=retried if temporary else 1,
            refused_model=refused,
        )
    return AIError(f"OpenAI error: {redact(str(exc))[:300]}", permanent=True)  # bad JSON, a refused parse...


async def _call(what: str, call, *, model: str = "") -> Any:
    try:
        return await call
    except openai.OpenAIError as exc:
        error = _error(exc, model=model)
        logger.warning("openai %s failed after %d attempt(s): %s", what, error.attempts, error)
        raise error from None


def _as_is(request: dict) -> dict:
    # The request's fields go in the body as they are (`extra_body`, merged after the SDK's
    # per-call transform) instead of as arguments the SDK walks, on every call, against its
    # TypedDicts to rename aliased keys and format dates and files — none of which these
    # plain JSON values use. Walking the tools' and the text format's JSON schemas cost more
    # CPU than the rest of the request.
    return {"extra_body": request}


async def response_create(**request) -> Response:
    return await _call("responses.create", _client().responses.create(**_as_is(request)), model=str(request.get("model") or ""))


async def transcription_create(**request) -> Any:
    """`POST /audio/transcriptions` (multipart: the SDK builds it from `file`, a (name, bytes,
    type) tuple, and the other fields)."""
    return await _call("audio.transcriptions.create", _client().audio.transcriptions.create(**request), model=str(request.get("model") or ""))


async def conversation_create(*, items: list[dict], metadata: dict[str, str]) -> str:
    conversation = await _call("conversations.create", _client().conversations.create(**_as_is({"items": items, "metadata": metadata})))
    return conversation.id


async def conversation_items_add(*, conversation_id: str, items: list[dict]) -> None:
    await _call("conversations.items.create", _client().conversations.items.create(conversation_id=conversation_id, items=items))


async def model_shutdown_dates() -> dict[str, date | None]:
    """Every model the key may use (`GET /v1/models`) with the day OpenAI shuts it down: its
    `shutdown_date`, None while none is announced (or the date cannot be read)."""

    async def listing() -> dict[str, date | None]:
        return {model.id: _day(model.id, model.shutdown_date) async for model in _client().models.list()}

    return await _call("models.list", listing())


def _day(model: str, value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        logger.warning("openai models.list: %s has a shutdown_date that is not a date: %r", model, str(value)[:40])
        return None
