"""The agent's access to OpenAI: Responses and Conversations APIs through the official SDK.

The SDK's own retries are off (`max_retries=0`): this module owns a bounded retry with
exponential backoff for the failures where waiting can help (timeouts, connection errors,
429, 5xx), and turns everything into `AIError`, whose `permanent` flag says whether a later
try could succeed. One SDK client per process: it holds an httpx connection pool and is
safe to share between the worker's threads. The API key never appears in an error's text.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import openai
from django.conf import settings
from django.db import connection

from whatsbot.logging import redact

logger = logging.getLogger(__name__)


@dataclass
class AIError(Exception):
    message: str
    permanent: bool
    http_status: int | None = None
    attempts: int = 1

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def ai_configured() -> bool:
    """False: no OPENAI_API_KEY, the offline agent answers."""
    return bool(settings.OPENAI_API_KEY)


_lock = threading.Lock()
_clients: dict[tuple, openai.OpenAI] = {}


def _sdk_client() -> openai.OpenAI:
    # Keyed by what the settings say, so a test (or an admin changing .env and restarting)
    # gets a client for the right server.
    key = (
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.OPENAI_TIMEOUT_SECONDS,
        settings.OPENAI_CONNECT_TIMEOUT_SECONDS,
    )
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = openai.OpenAI(
                    api_key=settings.OPENAI_API_KEY,
                    base_url=settings.OPENAI_BASE_URL,
                    timeout=openai.Timeout(settings.OPENAI_TIMEOUT_SECONDS, connect=settings.OPENAI_CONNECT_TIMEOUT_SECONDS),
                    max_retries=0,
                )
                _clients[key] = client
    return client


def _classify(exc: Exception) -> AIError:
    if isinstance(exc, openai.APITimeoutError):
        return AIError("OpenAI did not answer in time.", permanent=False)
    if isinstance(exc, openai.APIConnectionError):
        return AIError("Could not connect to OpenAI.", permanent=False)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        temporary = status in (408, 409, 429) or status >= 500
        detail = redact(str(getattr(exc, "message", "") or ""))[:300]
        return AIError(f"OpenAI answered {status}: {detail}", permanent=not temporary, http_status=status)
    if isinstance(exc, openai.OpenAIError):  # bad JSON, refused parse, ...
        return AIError(f"OpenAI error: {redact(str(exc))[:300]}", permanent=True)
    raise exc


def _backoff(attempt: int, exc: Exception) -> float:
    delay = min(settings.OPENAI_RETRY_BASE_SECONDS * (2 ** (attempt - 1)), settings.OPENAI_RETRY_MAX_SECONDS)
    response = getattr(exc, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after:
        try:
            delay = max(delay, min(float(retry_after), settings.OPENAI_RETRY_MAX_SECONDS))
        except ValueError:
            pass
    return delay


def _call(what: str, fn, /, **kwargs) -> Any:
    # A worker thread waiting seconds for the model must not sit on a database connection
    # (hundreds of threads, a pool of a few connections). Never inside a transaction.
    if not connection.in_atomic_block:
        connection.close()
    attempts = settings.OPENAI_MAX_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return fn(**kwargs)
        except openai.OpenAIError as exc:
            error = _classify(exc)
            error.attempts = attempt
            if error.permanent or attempt == attempts:
                logger.warning("openai %s failed for good after %d attempt(s): %s", what, attempt, error)
                raise error from None
            delay = _backoff(attempt, exc)
            logger.info("openai %s: temporary failure (attempt %d), retrying in %.1fs: %s", what, attempt, delay, error)
            time.sleep(delay)
    raise AssertionError("unreachable")


def conversation_create(*, items: list[dict], metadata: dict[str, str]) -> str:
    conversation = _call("conversations.create", _sdk_client().conversations.create, items=items, metadata=metadata)
    return conversation.id


def conversation_items_add(*, conversation_id: str, items: list[dict]) -> None:
    _call("conversations.items.create", _sdk_client().conversations.items.create, conversation_id=conversation_id, items=items)


# Request parts the SDK would otherwise walk, on every call, against its TypedDicts (to
# rename aliased keys and format dates/files, none of which these plain JSON dicts use):
# about 1 ms of CPU for the tools and 0.5 ms for the input items per call. They go in the
# body as they are, through `extra_body`, merged after that transform.
_SENT_AS_IS = ("input", "tools")


def _as_is(kwargs: dict) -> dict:
    plain = {key: kwargs.pop(key) for key in _SENT_AS_IS if key in kwargs}
    if plain:
        kwargs["extra_body"] = {**plain, **(kwargs.get("extra_body") or {})}
    return kwargs


def response_create(**kwargs):
    return _call("responses.create", _sdk_client().responses.create, **_as_is(kwargs))


def response_parse(**kwargs):
    return _call("responses.parse", _sdk_client().responses.parse, **_as_is(kwargs))


@dataclass
class Usage:
    model: str = ""
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def of(cls, response) -> Usage:
        usage = getattr(response, "usage", None)
        if usage is None:
            return cls(model=getattr(response, "model", "") or "")
        details = getattr(usage, "input_tokens_details", None)
        return cls(
            model=getattr(response, "model", "") or "",
            input_tokens=usage.input_tokens,
            cached_tokens=getattr(details, "cached_tokens", None) if details else None,
            output_tokens=usage.output_tokens,
        )
