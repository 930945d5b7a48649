"""Real worker processes for the tests that need them (a worker killed, a burst through two
workers): the environment a `celery worker` subprocess needs to work on the test database,
and fakes of OpenAI and the Graph API on threaded loopback servers (several workers call
them at once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.conversations.conftest import ITEMS_PATH, MESSAGES_PATH, FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def threaded_openai(openai_spec_validators):
    """A fake OpenAI on a threaded server: `on_reply` may wait (the model thinking) without
    holding up the other calls."""
    server = HTTPServer(threaded=True)
    server.start()
    fake = FakeOpenAI(server, openai_spec_validators)
    server.expect_request("/v1/responses", method="POST").respond_with_handler(fake.handle_responses)
    server.expect_request("/v1/conversations", method="POST").respond_with_handler(fake.handle_conversations)
    server.expect_request(ITEMS_PATH, method="POST").respond_with_handler(fake.handle_items)
    yield fake
    server.clear()
    server.stop()
    assert not fake.invalid, "bodies that do not match OpenAI's spec:\n" + "\n".join(fake.invalid)


@pytest.fixture
def graph_sends():
    """A fake Graph API (threaded) counting the texts it was asked to send, per customer."""
    server = HTTPServer(threaded=True)
    server.start()
    sent: Counter = Counter()
    lock = threading.Lock()

    def handle(request):
        body = json.loads(request.get_data())
        if body.get("type") == "text":
            with lock:
                sent[body["to"]] += 1
                n = sum(sent.values())
            return Response(json.dumps({"messages": [{"id": f"wamid.reply{n}"}]}), content_type="application/json")
        return Response(json.dumps({"success": True}), content_type="application/json")

    server.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(handle)
    yield server, sent
    server.clear()
    server.stop()


def worker_environment(*, settings, openai: FakeOpenAI, graph: HTTPServer, **overrides: str) -> dict[str, str]:
    """What a worker subprocess needs to work on this test's (committed) database."""
    database = connection.settings_dict
    return {
        **os.environ,
        "WHATSBOT_TESTING": "1",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "OPENAI_API_KEY": "sk-test-fake-key-0123456789",
        "OPENAI_BASE_URL": openai.server.url_for("/v1"),
        "WHATSAPP_API_BASE_URL": graph.url_for("").rstrip("/"),
        "WHATSAPP_PHONE_ID": "",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


def worker_start(name: str, env: dict) -> subprocess.Popen:
    """`celery worker` as the Procfile runs it (the project's pool), its log on stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "whatsbot", "worker", "-n", f"{name}@%h", "--loglevel=WARNING",
         "--concurrency=2", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def until(predicate, timeout: float, every: float = 0.2, step=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step:
            step()
        if predicate():
            return True
        time.sleep(every)
    return False


def text_delivery(meta_example, *, wa_id: str, wamid: str, text: str) -> dict:
    """Meta's example text message, from `wa_id`, with its own id and text."""
    payload = meta_example("Text Message")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = wa_id
    value["messages"][0]["id"] = wamid
    value["messages"][0]["text"]["body"] = text
    return payload
