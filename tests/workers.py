"""Real worker processes for the tests that need them (a worker killed, a burst through two
workers): the environment a `celery worker` subprocess needs to work on the test database,
the workers started and stopped, and fakes of OpenAI and the Graph API on threaded loopback
servers (several workers call them at once). Also `until`, the tests' one way of waiting.

`tests/conftest.py` loads this module as a plugin (`pytest_plugins`): its fixtures are
everyone's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connection
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.conftest import GraphServer
from tests.conversations.conftest import MESSAGES_PATH, FakeOpenAI, fake_openai_serving

ROOT = Path(__file__).resolve().parent.parent
# What a worker's log must not hold after a run.
LOG_ERRORS = ("InvalidSqlStatementName", "Traceback", "ERROR")

T = TypeVar("T")


@pytest.fixture
def threaded_openai(openai_spec_validators):
    """A fake OpenAI on a threaded server: `on_reply` may wait (the model thinking) without
    holding up the other calls."""
    server = HTTPServer(threaded=True)
    server.start()
    try:
        with fake_openai_serving(server, openai_spec_validators) as fake:
            yield fake
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def graph_sends():
    """A fake Graph API (threaded) counting the texts it was asked to send, per customer."""
    server = GraphServer(threaded=True)
    server.start()
    sent: Counter = Counter()
    lock = threading.Lock()

    def handle(request):
        body = json.loads(request.get_data())
        if body.get("type") == "text":
            with lock:
                sent[body.get("to") or body["recipient"]] += 1
                n = sum(sent.values())
            return Response(json.dumps({"messages": [{"id": f"wamid.reply{n}"}]}), content_type="application/json")
        return Response(json.dumps({"success": True}), content_type="application/json")

    server.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(handle)
    yield server, sent
    misaddressed = server.misaddressed
    server.clear()
    server.stop()
    assert not misaddressed, f"sends Meta would refuse: {misaddressed}"


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


@dataclass
class Workers:
    processes: list[subprocess.Popen]
    log: str = ""  # their stderr, once they have stopped


@contextmanager
def workers_running(env: dict, *names: str) -> Iterator[Workers]:
    """A `celery worker` per name; on the way out each gets SIGTERM (a warm shutdown, as
    from a process manager) and its log is collected."""
    workers = Workers([worker_start(name, env) for name in names])
    try:
        yield workers
    finally:
        for process in workers.processes:
            process.send_signal(signal.SIGTERM)
        workers.log = "".join(process.communicate(timeout=40)[1] for process in workers.processes)


def log_errors(log: str) -> list[str]:
    """Which of LOG_ERRORS a worker's log holds."""
    return [word for word in LOG_ERRORS if word in log]


def until(predicate: Callable[[], T], timeout: float = 15.0, every: float = 0.1, step: Callable[[], object] | None = None) -> T:
    """Call `predicate` (after `step`, when given) every `every` seconds until it returns
    something true or `timeout` seconds have passed: its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if step:
            step()
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def text_delivery(meta_example, *, wa_id: str, wamid: str, text: str) -> dict:
    """Meta's example text message, from `wa_id`, with its own id and text."""
    payload = meta_example("Text Message")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = wa_id
    value["messages"][0]["id"] = wamid
    value["messages"][0]["text"]["body"] = text
    return payload


@pytest.fixture
def post_texts(post_webhook, meta_example):
    """Post customers' texts to the webhook, each in a delivery of its own, given as
    (the customer's wa_id, the message's wamid, its text); each must be answered 200."""

    def post(texts: Iterable[tuple[str, str, str]]) -> None:
        for wa_id, wamid, text in texts:
            assert post_webhook(text_delivery(meta_example, wa_id=wa_id, wamid=wamid, text=text)).status_code == 200

    return post
