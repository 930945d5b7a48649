"""A worker killed outright (SIGKILL, an OOM kill, a lost machine) while its customers wait for
the model: another worker answers each of them exactly once, as soon as their leases run out
and the sweeper queues them again. Real worker processes, the real Redis broker, a fake
OpenAI and a fake Graph API on loopback; the lease is shortened to keep the test short
(with the defaults the same takes about LEASE_SECONDS + 30 s: bench/worker_kill.py)."""

import json
import os
import signal
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

from conversations.models import Message
from conversations.services import sweeps
from tests.conversations.conftest import ITEMS_PATH, FakeOpenAI, openai_spec_validators  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 8
LEASE_SECONDS = 6
MESSAGES_PATH = "/v23.0/106540352242922/messages"


@pytest.fixture
def slow_openai(openai_spec_validators):
    """A fake OpenAI whose replies wait until released (the model thinking), on a threaded server."""
    server = HTTPServer(threaded=True)
    server.start()
    fake = FakeOpenAI(server, openai_spec_validators)
    fake.release = threading.Event()
    fake.on_reply = lambda body: fake.release.wait(30)
    server.expect_request("/v1/responses", method="POST").respond_with_handler(fake.handle_responses)
    server.expect_request("/v1/conversations", method="POST").respond_with_handler(fake.handle_conversations)
    server.expect_request(ITEMS_PATH, method="POST").respond_with_handler(fake.handle_items)
    yield fake
    fake.release.set()
    server.clear()
    server.stop()


@pytest.fixture
def graph_sends():
    """A fake Graph API (threaded) that counts the texts it was asked to send, per customer."""
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


def worker_start(name: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "whatsbot", "worker", "-n", f"{name}@%h", "--loglevel=WARNING",
         "--concurrency=2", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def until(predicate, timeout: float, every: float = 0.2, step=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step:
            step()
        if predicate():
            return True
        time.sleep(every)
    return False


def test_a_killed_workers_customers_are_answered_exactly_once_by_another(
    channel, post_webhook, meta_example, slow_openai, graph_sends, redis_queue, settings
):
    graph, sent = graph_sends
    database = connection.settings_dict
    env = {
        **os.environ,
        "WHATSBOT_TESTING": "1",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "OPENAI_API_KEY": "sk-test-fake-key-0123456789",
        "OPENAI_BASE_URL": slow_openai.server.url_for("/v1"),
        "WHATSAPP_API_BASE_URL": graph.url_for("").rstrip("/"),
        "WHATSAPP_PHONE_ID": "",
        "REPLY_DEBOUNCE_SECONDS": "1",
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "LOG_LEVEL": "WARNING",
    }
    customers = [f"3933300000{n:02d}" for n in range(CUSTOMERS)]
    for n, wa_id in enumerate(customers):
        payload = meta_example("Text Message")
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = wa_id
        value["messages"][0]["id"] = f"wamid.kill.{n}"
        value["messages"][0]["text"]["body"] = f"Buongiorno, sono il cliente {n}"
        assert post_webhook(payload).status_code == 200

    first = worker_start("first", env)
    try:
        # Every customer's reply is waiting for the model in the first worker.
        assert until(lambda: len(slow_openai.reply_requests) == CUSTOMERS, 30), slow_openai.calls
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = time.monotonic()
    slow_openai.on_reply = None  # the model answers at once from now on
    slow_openai.release.set()
    assert Message.objects.filter(direction="out").count() == 0

    settings.INBOUND_SWEEP_AFTER_SECONDS = 0
    second = worker_start("second", env)
    try:
        # The beat's sweeper, every second instead of every 30 s.
        answered = until(lambda: all(sent[c] >= 1 for c in customers), 90, every=1.0, step=sweeps.inbound_sweep)
        elapsed = time.monotonic() - killed_at
        time.sleep(LEASE_SECONDS + 2)  # long enough for a second answer to show, if one were coming
        for _ in range(3):
            sweeps.inbound_sweep()
            sweeps.outbound_sweep()
            time.sleep(1)
    finally:
        second.send_signal(signal.SIGTERM)
        _out, errors = second.communicate(timeout=40)

    assert answered, f"answered: {dict(sent)}"
    assert {c: sent[c] for c in customers} == {c: 1 for c in customers}  # exactly once each
    print(f"answered {CUSTOMERS} customers {elapsed:.1f} s after the kill")
    assert elapsed < LEASE_SECONDS + 30, elapsed
    assert Message.objects.filter(direction="in", handled_at__isnull=True).count() == 0
    assert "Traceback" not in errors, errors[-3000:]
