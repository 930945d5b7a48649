"""The agent's access to OpenAI: Responses and Conversations APIs through the official SDK.

The SDK's own retries are off (`max_retries=0`): this module owns a bounded retry with
exponential backoff for the failures where waiting can help (timeouts, connection errors,
429, 5xx), and turns everything into `AIError`, whose `permanent` flag says whether a later
try could succeed. One SDK client per process: it holds an httpx connection pool and is
safe to share between the worker's threads. The API key never appears in an error's text.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai.lib._parsing._responses import type_to_text_format_param
from django.conf import settings
from django.db import connection
from pydantic import BaseModel, ValidationError

from whatsbot.logging import redact

from . import loop_http

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
# Calls are spread over a few clients (each its own connection pool): httpcore walks every
# connection of a pool, probing the idle ones' sockets, each time a request starts or ends,
# so one pool holding the connections of hundreds of threads' calls in flight costs
# O(connections) per call. Round robin, so keep-alive connections are still reused.
CLIENT_SHARDS = 16
_next_shard = itertools.count()


def _client_key() -> tuple:
    # Keyed by what the settings say, so a test (or an admin changing .env and restarting)
    # gets a client for the right server.
    return (
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.OPENAI_TIMEOUT_SECONDS,
        settings.OPENAI_CONNECT_TIMEOUT_SECONDS,
        next(_next_shard) % CLIENT_SHARDS,
    )


def _client_options() -> dict:
    return {
        "api_key": settings.OPENAI_API_KEY,
        "base_url": settings.OPENAI_BASE_URL,
        "timeout": openai.Timeout(settings.OPENAI_TIMEOUT_SECONDS, connect=settings.OPENAI_CONNECT_TIMEOUT_SECONDS),
        "max_retries": 0,
    }


def _sdk_client() -> openai.OpenAI:
    key = _client_key()
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = openai.OpenAI(**_client_options())
    return client


# An async client's connections belong to the event loop that opened them: one set per loop.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def async_clients_close() -> None:
    """Close the running loop's clients (their kept connections), when the loop stops."""
    for client in (_async_clients.pop(asyncio.get_running_loop(), None) or {}).values():
        await client.close()


def _sdk_client_async() -> openai.AsyncOpenAI:
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    own_transport = loop_http.usable()  # not with a proxy: httpx's transport, spread as above
    # With the loop's transport, one client per loop: its pool is O(1) per request.
    key = _client_key()[:-1] if own_transport else _client_key()
    client = clients.get(key)
    if client is None:
        options = _client_options()
        if own_transport:
            options["http_client"] = httpx2.AsyncClient(
                transport=loop_http.LoopTransport(), timeout=options["timeout"], follow_redirects=True
            )
        client = clients[key] = openai.AsyncOpenAI(**options)
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
    for attempt in range(1, settings.OPENAI_MAX_ATTEMPTS + 1):
        try:
            return fn(**kwargs)
        except openai.OpenAIError as exc:
            time.sleep(_retry_delay(what, attempt, exc))
    raise AssertionError("unreachable")


async def _call_async(what: str, fn, /, **kwargs) -> Any:
    """`_call` on the worker's event loop (`conversations.eventloop`): same tries, same errors."""
    for attempt in range(1, settings.OPENAI_MAX_ATTEMPTS + 1):
        try:
            return await fn(**kwargs)
        except openai.OpenAIError as exc:
            await asyncio.sleep(_retry_delay(what, attempt, exc))
    raise AssertionError("unreachable")


def _retry_delay(what: str, attempt: int, exc: openai.OpenAIError) -> float:
    """How long to wait before the next try of a failed call, or its `AIError` when there
    is none (a permanent failure, or the last try)."""
    error = _classify(exc)
    error.attempts = attempt
    if error.permanent or attempt >= settings.OPENAI_MAX_ATTEMPTS:
        logger.warning("openai %s failed for good after %d attempt(s): %s", what, attempt, error)
        raise error from None
    delay = _backoff(attempt, exc)
    logger.info("openai %s: temporary failure (attempt %d), retrying in %.1fs: %s", what, attempt, delay, error)
    return delay


def conversation_create(*, items: list[dict], metadata: dict[str, str]) -> str:
    conversation = _call("conversations.create", _sdk_client().conversations.create, items=items, metadata=metadata)
    return conversation.id


def conversation_items_add(*, conversation_id: str, items: list[dict]) -> None:
    _call("conversations.items.create", _sdk_client().conversations.items.create, conversation_id=conversation_id, items=items)


# The request's fields go in the body as they are, through `extra_body` (merged after the
# SDK's per-call transform), instead of as keyword arguments the SDK walks, on every call,
# against its TypedDicts to rename aliased keys and format dates and files (none of which
# these plain JSON values use): matching a string against the union of every model name
# alone cost more CPU than sending the request. Options of the call itself stay arguments.
_CALL_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout", "parse_as")


def _as_is(kwargs: dict) -> dict:
    plain = {key: kwargs.pop(key) for key in list(kwargs) if key not in _CALL_OPTIONS}
    if plain:
        kwargs["extra_body"] = {**plain, **(kwargs.get("extra_body") or {})}
    return kwargs


def response_create(**kwargs) -> Answer:
    raw = _call("responses.create", _sdk_client().responses.with_raw_response.create, **_as_is(kwargs))
    return Answer.of(raw)


async def response_create_async(**kwargs) -> Answer:
    raw = await _call_async("responses.create", _sdk_client_async().responses.with_raw_response.create, **_as_is(kwargs))
    return Answer.of(raw)


def response_parse(*, text_format: type[BaseModel], **kwargs) -> Answer:
    """`responses.parse` with the pydantic model's strict JSON schema as the text format
    (the SDK's own conversion, as `text_format=` does, but made once per model: on every
    call it costs more CPU than the rest of the request); the answer's text is validated
    against the same model (the SDK's `parse_as`)."""
    raw = _call("responses.parse", _sdk_client().responses.with_raw_response.parse, **_parse_kwargs(text_format, kwargs))
    return Answer.parsed(raw, text_format)


async def response_parse_async(*, text_format: type[BaseModel], **kwargs) -> Answer:
    raw = await _call_async(
        "responses.parse", _sdk_client_async().responses.with_raw_response.parse, **_parse_kwargs(text_format, kwargs)
    )
    return Answer.parsed(raw, text_format)


def _parse_kwargs(text_format: type[BaseModel], kwargs: dict) -> dict:
    kwargs["extra_body"] = {"text": {"format": _text_format(text_format)}, **(kwargs.get("extra_body") or {})}
    return _as_is({"parse_as": text_format, **kwargs})


@functools.lru_cache(maxsize=64)
def _text_format(model: type[BaseModel]) -> dict:
    # Sent as it is (through `extra_body`, never edited): shared by every call for the model.
    return type_to_text_format_param(model)


@dataclass
class Answer:
    """What the agent reads of a Responses API answer, taken from its JSON: the SDK's typed
    objects (built field by field, twice over for `parse`) cost more CPU than the rest of
    the call. The call itself is still the SDK's (`with_raw_response`: same request, same
    errors and retries)."""

    model: str
    output: list[dict]
    usage: Usage
    output_parsed: Any = None

    @classmethod
    def of(cls, raw) -> Answer:
        try:
            body = json.loads(raw.content)
        except ValueError:
            raise AIError("OpenAI answered with invalid JSON.", permanent=True) from None
        if not isinstance(body, dict):
            raise AIError("OpenAI answered with an unexpected body.", permanent=True)
        output = [item for item in body.get("output") or [] if isinstance(item, dict)]
        return cls(model=str(body.get("model") or ""), output=output, usage=Usage.of_json(body))

    @classmethod
    def parsed(cls, raw, text_format: type[BaseModel]) -> Answer:
        """The answer of a `parse` call, its text validated against `text_format`."""
        answer = cls.of(raw)
        text = answer.output_text
        if text:
            try:
                answer.output_parsed = text_format.model_validate_json(text)
            except ValidationError as exc:
                raise AIError(
                    f"OpenAI's structured answer did not match the schema: {redact(str(exc))[:300]}", permanent=True
                ) from None
        return answer

    @property
    def output_text(self) -> str:
        """Every `output_text` part of the answer's messages, joined (as the SDK's)."""
        return "".join(
            part.get("text") or ""
            for item in self.output
            if item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        )


@dataclass
class Usage:
    model: str = ""
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def of_json(cls, body: dict) -> Usage:
        model = str(body.get("model") or "")
        usage = body.get("usage")
        if not isinstance(usage, dict):
            return cls(model=model)
        details = usage.get("input_tokens_details") or {}
        return cls(
            model=model,
            input_tokens=usage.get("input_tokens"),
            cached_tokens=details.get("cached_tokens") if isinstance(details, dict) else None,
            output_tokens=usage.get("output_tokens"),
        )
