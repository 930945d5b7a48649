"""A worker killed outright (SIGKILL, an OOM kill, a lost machine) while its customers wait for
the model: another worker answers each of them exactly once, as soon as their leases run out
and the sweeper queues them again. Real worker processes, the real Redis broker, a fake
OpenAI and a fake Graph API on loopback; the lease is shortened to keep the test short
(with the defaults the same takes about LEASE_SECONDS + 30 s: bench/worker_kill.py)."""

import signal
import threading
import time

import pytest

from conversations.models import Message
from conversations.services import sweeps
from tests.workers import log_errors, until, worker_environment, worker_start, workers_running

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 8
LEASE_SECONDS = 6


def test_a_killed_workers_customers_are_answered_exactly_once_by_another(
    channel, post_texts, threaded_openai, graph_sends, redis_queue, settings
):
    graph, sent = graph_sends
    release = threading.Event()
    threaded_openai.on_reply = lambda body: release.wait(30)  # the model thinking until released
    env = worker_environment(
        settings=settings, openai=threaded_openai, graph=graph, REPLY_DEBOUNCE_SECONDS="1", LEASE_SECONDS=str(LEASE_SECONDS)
    )
    customers = [f"3933300000{n:02d}" for n in range(CUSTOMERS)]
    post_texts((wa_id, f"wamid.kill.{n}", f"Buongiorno, sono il cliente {n}") for n, wa_id in enumerate(customers))

    first = worker_start("first", env)
    try:
        # Every customer's reply is waiting for the model in the first worker.
        assert until(lambda: len(threaded_openai.reply_requests) == CUSTOMERS, 30), threaded_openai.calls
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = time.monotonic()
    threaded_openai.on_reply = None  # the model answers at once from now on
    release.set()
    assert Message.objects.filter(direction="out").count() == 0

    settings.INBOUND_SWEEP_AFTER_SECONDS = 0
    with workers_running(env, "second") as second:
        # The beat's sweeper, every second instead of every 30 s.
        answered = until(lambda: all(sent[c] >= 1 for c in customers), 90, every=1.0, step=sweeps.inbound_sweep)
        elapsed = time.monotonic() - killed_at
        time.sleep(LEASE_SECONDS + 2)  # long enough for a second answer to show, if one were coming
        for _ in range(3):
            sweeps.inbound_sweep()
            sweeps.outbound_sweep()
            time.sleep(1)

    assert answered, f"answered: {dict(sent)}"
    assert {c: sent[c] for c in customers} == {c: 1 for c in customers}  # exactly once each
    assert elapsed < LEASE_SECONDS + 30, elapsed
    assert Message.objects.filter(direction="in", handled_at__isnull=True).count() == 0
    assert not log_errors(second.log), second.log[-3000:]  # no Traceback, no ERROR
