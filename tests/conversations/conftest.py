"""The conversations app's tests: a fake OpenAI on loopback reached through the real SDK, a
fake Graph API, and the turn run the way eager tasks run it (`handle`, `reply`, `deliver`).

Every body the client sends to `/responses`, `/conversations` and a conversation's items is
validated against OpenAI's own OpenAPI description (the part of it in `tests/fixtures/openai/`,
read by `openai_spec_validators` in tests/conftest.py); a test fails at teardown if any was
invalid.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection
from werkzeug import Request, Response

from conversations.models import Message
from conversations import delivery, runtime, turn

from .factories import MessageFactory

ITEMS_PATH = re.compile(r"^/v1/conversations/(?P<id>[^/]+)/items$")
MESSAGES_PATH = f"/{settings.WHATSAPP_API_VERSION}/106540352242922/messages"


def text_output(text: str) -> dict:
    return {
        "type": "message",
        "id": "msg_fake",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def handoff_call(reason: str, call_id: str = "call_handoff_1") -> dict:
    return {
        "type": "function_call",
        "id": "fc_fake",
        "call_id": call_id,
        "name": "handoff_to_human",
        "arguments": json.dumps({"reason": reason}),
        "status": "completed",
    }


class FakeOpenAI:
    """Scripted answers. `replies` are popped in order (a str is the reply's text, a dict an
    output item, an int an HTTP error status); `extract(text)` gives the extraction's fields;
    `reply_failures` / `extract_failures` are statuses returned before the next success
    (`always_fail` makes every `/responses` call fail). A request for a model in
    `refused_models` gets OpenAI's answer for a model it does not serve; `models` is what
    `GET /v1/models` lists (model id → its `shutdown_date`). `/audio/transcriptions` answers
    `transcript` (`transcription_failures`: statuses first)."""

    def __init__(self, server, validators):
        self.server = server
        self.validators = validators
        self.calls: list[tuple[str, dict]] = []
        self.invalid: list[str] = []
        self.replies: deque = deque()
        self.default_reply = "Certo, ti aiuto volentieri."
        self.extract: Callable[[str], dict] = lambda text: {}
        self.reply_failures: deque[int] = deque()
        self.extract_failures: deque[int] = deque()
        self.always_fail: int | None = None
        self.on_reply: Callable[[dict], None] | None = None
        self.summary_text = "Il cliente Mario Rossi ha chiesto dell'ordine A-1234."
        self.refused_models: set[str] = set()
        self.models: dict[str, str | None] = {}
        self.transcript = "Buongiorno, sono Mario Rossi e vorrei sapere dove è il mio ordine."
        self.transcription_failures: deque[int] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- what the tests read ----------------------------------------------------------------
    def bodies(self, kind: str) -> list[dict]:
        return [body for k, body in self.calls if k == kind]

    @property
    def reply_requests(self) -> list[dict]:
        return self.bodies("reply")

    @property
    def extraction_requests(self) -> list[dict]:
        return self.bodies("extract")

    @property
    def conversations_created(self) -> list[dict]:
        return self.bodies("conversation")

    @property
    def transcription_requests(self) -> list[dict]:
        return self.bodies("transcription")

    # --- the server side --------------------------------------------------------------------
    def _validate(self, kind: str, body: dict) -> None:
        errors = sorted(self.validators[kind].iter_errors(body), key=lambda e: list(e.path))
        for error in errors[:3]:
            self.invalid.append(f"{kind}: {error.message[:300]} at {list(error.absolute_path)}")

    def _json(self, payload: dict, status: int = 200) -> Response:
        return Response(json.dumps(payload), status=status, content_type="application/json")

    def _error(self, status: int) -> Response:
        response = self._json({"error": {"message": f"fake failure {status}", "type": "server_error", "param": None, "code": None}}, status)
        response.headers["retry-after-ms"] = "1"  # the SDK's retries wait that long, not seconds
        return response

    def handle_responses(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self._validate("responses", body)
        if (body.get("text") or {}).get("format", {}).get("type") == "json_schema":
            kind = "extract"
        elif body.get("conversation"):
            kind = "reply"
        else:
            kind = "summary"
        with self._lock:
            self.calls.append((kind, body))
        if body.get("model") in self.refused_models:
            return self._model_refused(body["model"])
        if self.always_fail:
            return self._error(self.always_fail)
        failures = {"reply": self.reply_failures, "extract": self.extract_failures}.get(kind)
        if failures:
            return self._error(failures.popleft())
        if kind == "extract":
            text = " ".join(i["content"] for i in body["input"] if isinstance(i.get("content"), str))
            fields = body["text"]["format"]["schema"]["properties"]
            values = {key: None for key in fields}
            values.update(self.extract(text))
            output = [text_output(json.dumps(values))]
        elif kind == "summary":
            output = [text_output(self.summary_text)]
        else:
            if self.on_reply:
                self.on_reply(body)
            script = self.replies.popleft() if self.replies else self.default_reply
            if isinstance(script, int):
                return self._error(script)
            output = [script] if isinstance(script, dict) else [text_output(script)]
        return self._json(self.response_object(body, output))

    def response_object(self, body: dict, output: list[dict]) -> dict:
        conversation = body.get("conversation")
        return {
            "id": f"resp_{next(self._ids)}",
            "object": "response",
            "created_at": 1767225600,
            "status": "completed",
            "model": f"{body.get('model', 'gpt-4.1')}-2025-04-14",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": body.get("tools", []),
            "conversation": {"id": conversation} if isinstance(conversation, str) else conversation,
            "usage": {
                "input_tokens": 1200,
                "input_tokens_details": {"cached_tokens": 1000},
                "output_tokens": 40,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 1240,
            },
        }

    def handle_transcriptions(self, request: Request) -> Response:
        # Multipart: its fields, and the file's part as its name (what the spec's schema can check).
        fields = {key: request.form.get(key) for key in request.form}
        upload = request.files.get("file")
        self._validate("transcriptions", {**fields, **({"file": upload.filename} if upload else {})})
        body = {**fields, "file": (upload.filename, upload.read(), upload.mimetype) if upload else None}
        with self._lock:
            self.calls.append(("transcription", body))
        if fields.get("model") in self.refused_models:
            return self._model_refused(fields["model"])
        if self.transcription_failures:
            return self._error(self.transcription_failures.popleft())
        return self._json({"text": self.transcript, "usage": {"type": "duration", "seconds": 4}})

    def _model_refused(self, model: str) -> Response:
        # What OpenAI answers for a model it does not serve (unknown, or shut down).
        message = f"The model `{model}` does not exist or you do not have access to it."
        return self._json({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "model_not_found"}}, 404)

    def handle_models(self, request: Request) -> Response:
        with self._lock:
            self.calls.append(("models", {}))
        data = [
            {"id": model, "object": "model", "created": 1767225600, "owned_by": "openai", "shutdown_date": shutdown_date}
            for model, shutdown_date in self.models.items()
        ]
        return self._json({"object": "list", "data": data})

    def handle_conversations(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self._validate("conversations", body)
        with self._lock:
            self.calls.append(("conversation", body))
        if self.always_fail:
            return self._error(self.always_fail)
        return self._json({"id": f"conv_{next(self._ids)}", "object": "conversation", "created_at": 1767225600, "metadata": body.get("metadata") or {}})

    def handle_items(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self._validate("items", body)
        with self._lock:
            self.calls.append(("items", {"conversation": ITEMS_PATH.match(request.path)["id"], **body}))
        data = [{**copy.deepcopy(item), "id": f"item_{next(self._ids)}", "status": "completed"} for item in body["items"]]
        return self._json({"object": "list", "data": data, "first_id": data[0]["id"], "last_id": data[-1]["id"], "has_more": False})


@contextmanager
def fake_openai_serving(server, validators) -> Iterator[FakeOpenAI]:
    """A FakeOpenAI answering OpenAI's routes on `server`; at the end, every body it was sent
    must have matched OpenAI's spec."""
    fake = FakeOpenAI(server, validators)
    server.expect_request("/v1/responses", method="POST").respond_with_handler(fake.handle_responses)
    server.expect_request("/v1/conversations", method="POST").respond_with_handler(fake.handle_conversations)
    server.expect_request(ITEMS_PATH, method="POST").respond_with_handler(fake.handle_items)
    server.expect_request("/v1/models", method="GET").respond_with_handler(fake.handle_models)
    server.expect_request("/v1/audio/transcriptions", method="POST").respond_with_handler(fake.handle_transcriptions)
    yield fake
    assert not fake.invalid, "bodies that do not match OpenAI's spec:\n" + "\n".join(fake.invalid)


@pytest.fixture
def fake_openai(httpserver, settings, openai_spec_validators):
    settings.OPENAI_BASE_URL = httpserver.url_for("/v1")
    settings.OPENAI_API_KEY = "sk-test-fake-key-0123456789"
    settings.OPENAI_MAX_ATTEMPTS = 3
    with fake_openai_serving(httpserver, openai_spec_validators) as fake:
        yield fake


@pytest.fixture
def no_debounce(settings):
    """No quiet period: the turn that handles a customer's text answers it itself."""
    settings.REPLY_DEBOUNCE_SECONDS = 0


@pytest.fixture
def quiet_period(settings):
    """A quiet period: each text queues the debounced reply task with its countdown."""
    settings.REPLY_DEBOUNCE_SECONDS = 3


@pytest.fixture
def graph(graph_api):
    """The fake Meta: read receipts and sends succeed."""
    counter = itertools.count(1)
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(
        lambda request: Response(json.dumps({"messages": [{"id": f"wamid.out{next(counter)}"}]}), content_type="application/json")
    )
    return graph_api


def sent_to_whatsapp(graph_api) -> list[str]:
    """The texts the fake Meta was asked to send (read receipts left out)."""
    out = []
    for request, _ in graph_api.log:
        if request.path == MESSAGES_PATH:
            body = json.loads(request.get_data())
            if body.get("type") == "text":
                out.append(body["text"]["body"])
    return out


def handle(message_id: int) -> str:
    """A stored customer message's turn, as the `inbound_handle` task runs it (eagerly)."""
    return runtime.run(turn.message_handle, message_id)


def reply(message_id: int) -> str:
    """The debounced reply's turn, as the `agent_reply` task runs it (eagerly)."""
    return runtime.run(turn.burst_reply, message_id)


def deliver(message_id: int) -> str:
    """One delivery attempt, as the `message_deliver` task runs it (eagerly)."""
    return runtime.run(delivery.message_deliver, message_id)


def customer_says(conversation, text: str) -> Message:
    """A customer text as the webhook stores it, handled by its turn (the extraction and,
    with a quiet period, the reply task queued with its countdown; a command answered at once)."""
    message = MessageFactory(conversation=conversation, text=text)
    assert handle(message.pk) in ("queued", "sent", "handled")
    return message


def bot_texts(conversation) -> list[str]:
    return list(conversation.messages.filter(direction="out").order_by("pk").values_list("text", flat=True))


def customer_writes_while_the_model_thinks(fake_openai, conversation, text: str) -> list:
    """On the next reply call, the customer's new `text` is stored (as the webhook would,
    from another connection: the fake server's thread); the list receives that message."""
    arrived: list = []

    def customer_writes_again(body):
        if not arrived:
            arrived.append(MessageFactory(conversation=conversation, text=text))
            connection.close()  # this runs in the fake server's thread

    fake_openai.on_reply = customer_writes_again
    return arrived
