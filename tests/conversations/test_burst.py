"""Bursts through the real worker: two worker processes, the real Redis broker, many customers
writing again while the model thinks — so many replies go stale, the case whose commit once
sent a ROLLBACK inside a pipeline and left the loop's connections with prepared statements
the server no longer had (docs/burst-bench.md). Every customer is answered exactly once, the
connections keep working for the next wave, and no worker logs an error.
(`bench/burst.py --runs 10` is the full-size version: 2,000 texts from 1,000 customers.)"""

import time
from collections import Counter

import pytest

from conversations.models import Message
from tests.workers import log_errors, until, worker_environment, workers_running

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 40
MODEL_SECONDS = 1.5


def test_a_burst_with_stale_replies_answers_every_customer_once_and_leaves_the_connections_working(
    channel, post_texts, threaded_openai, graph_sends, redis_queue, settings
):
    graph, sent = graph_sends
    threaded_openai.on_reply = lambda body: time.sleep(MODEL_SECONDS)
    env = worker_environment(settings=settings, openai=threaded_openai, graph=graph, REPLY_DEBOUNCE_SECONDS="0.5")
    customers = [f"3934400000{n:02d}" for n in range(CUSTOMERS)]

    def wave(name: str) -> None:
        post_texts((wa_id, f"wamid.burst.{name}.{n}", f"Messaggio {name} del cliente {n}") for n, wa_id in enumerate(customers))

    with workers_running(env, "burst1", "burst2") as workers:
        wave("a")
        # The second texts arrive while the first ones' replies wait for the model: those go stale.
        assert until(lambda: len(threaded_openai.reply_requests) >= CUSTOMERS // 2, 30)
        wave("b")
        assert until(lambda: all(sent[c] >= 1 for c in customers), 60), dict(sent)
        stale = len(threaded_openai.reply_requests) - CUSTOMERS
        # A third wave on the same connections: each customer answered again, once.
        time.sleep(2)
        wave("c")
        assert until(lambda: all(sent[c] >= 2 for c in customers), 60), dict(sent)
        time.sleep(3)  # long enough for an extra answer to show

    assert stale >= CUSTOMERS // 4, stale  # the premise: many replies went stale
    # One answer per burst: waves a and b are one burst for a customer whose first reply went
    # stale, two for one (late in a wave, on a busy machine) answered before its second text.
    replies = Counter(
        Message.objects.filter(direction="out", author="bot").values_list("conversation__profile__wa_id", flat=True)
    )
    assert all(2 <= replies[c] <= 3 for c in customers), dict(replies)
    assert sum(replies[c] == 2 for c in customers) >= CUSTOMERS // 4, dict(replies)
    for wa_id in customers:  # every reply answers texts no other reply answered
        thread = "".join(
            "o" if d == "out" else "i"
            for d in Message.objects.filter(conversation__profile__wa_id=wa_id).order_by("id").values_list("direction", flat=True)
        )
        assert thread.startswith("i") and "oo" not in thread, (wa_id, thread)
    assert {c: sent[c] for c in customers} == {c: replies[c] for c in customers}  # each stored reply sent once
    assert Message.objects.filter(direction="in", handled_at__isnull=True).count() == 0
    assert not log_errors(workers.log), workers.log[-3000:]
