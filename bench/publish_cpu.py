#!/usr/bin/env python3
"""CPU per queued Celery task: the web side (publishing) and the worker side (consuming).

    .venv/bin/python bench/publish_cpu.py                      # both sides
    .venv/bin/python bench/publish_cpu.py --side publish --tasks 4000 --batches 1,4,50
    .venv/bin/python bench/publish_cpu.py --side consume --tasks 4000

Publish side, in this process, against Redis (`REDIS_URL`, default db 9): the CPU this
process spends per task, for batches of 1, 4 and 50 ids (a lone POST, the group commit's
usual batch, a Meta batch of 50), for
  - `apply_async`, one call per task, each acquiring a producer (what Celery's docs show);
  - `apply_async` on one producer inside kombu's `Producer.batch` (one Redis round trip);
  - the middle way: Celery's message built once (`app.amqp.create_task_message`), copied
    per task and published through kombu's public `Producer.publish` in `Producer.batch`;
  - `enqueue`, what `conversations.queueing` does today.
Variants run interleaved, round after round, and the median of the rounds is printed;
Redis's own CPU (INFO, shared with the other users of the server, so only a hint) beside.

Consume side: a Celery worker process with the project's settings (its pool, late acks, no
ack emulation) consumes N no-op tasks; the CPU of that process between the first and the
last task, per task, for kombu's Redis transport (`--transports` adds others, as
`module:Transport`); then the same with each task queueing one more through `enqueue` (as a
customer text's task queues its debounced reply), which from inside a task is `apply_async`.

Only Redis is needed (queues `celery`, `bench.noop` and `bench.sink` of the db are emptied).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
NOOP_QUEUE = "bench.noop"
SINK_QUEUE = "bench.sink"  # the follow-up tasks' queue, which nobody consumes


def environment(redis_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "whatsbot.settings",
        "REDIS_URL": redis_url,
        "WHATSBOT_TESTING": "1",  # insecure defaults, no .env
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "WHATSAPP_PHONE_ID": "",
    }


# --- publishing ---------------------------------------------------------------------------


def publish_variants(task):
    from conversations.queueing import enqueue

    app = task.app

    def apply_async_each(ids):
        for pk in ids:
            task.apply_async((pk,), retry=False)

    def apply_async_batch(ids):
        with app.producer_or_acquire() as producer, producer.batch(max_size=200):
            for pk in ids:
                task.apply_async((pk,), producer=producer, retry=False)

    route = app.amqp.router.route({}, task.name, (0,), {}, task)
    queue = route["queue"]
    headers = app.amqp.create_task_message("x", task.name, (0,), {}, ignore_result=task.ignore_result).headers
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

    def kombu_publish(ids):
        reply_to = app.thread_oid
        with app.producer_or_acquire() as producer, producer.batch(max_size=200):
            for pk in ids:
                task_id = str(uuid4())
                producer.publish(
                    ([pk], {}, embed), exchange="", routing_key=queue.name, serializer="json", retry=False,
                    headers={**headers, "id": task_id, "root_id": task_id, "argsrepr": f"({pk!r},)"},
                    delivery_mode=queue.exchange.delivery_mode or app.conf.task_default_delivery_mode,
                    correlation_id=task_id, reply_to=reply_to,
                )

    def enqueue_today(ids):
        assert enqueue(task, ids) == len(ids)

    return {
        "apply_async each": apply_async_each,
        "apply_async batch": apply_async_batch,
        "kombu publish": kombu_publish,
        "enqueue": enqueue_today,
    }


def redis_cpu(client) -> float:
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def publish_measure(args) -> None:
    import django

    django.setup()
    import redis

    from conversations.tasks import inbound_handle

    client = redis.Redis.from_url(args.redis_url)
    client.delete("celery")
    variants = publish_variants(inbound_handle)
    for run in variants.values():  # warm-up: templates, declarations, connections
        run([1, 2, 3])
    client.delete("celery")

    print(f"publish: CPU per task (µs), median of {args.rounds} rounds of {args.tasks} tasks; Redis CPU in brackets")
    for size in args.batches:
        batches = [list(range(n, n + size)) for n in range(0, args.tasks, size)]
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                redis_before = redis_cpu(client)
                before = time.process_time()
                for ids in batches:
                    run(ids)
                cpu = time.process_time() - before
                redis_used = redis_cpu(client) - redis_before
                queued = client.llen("celery")
                client.delete("celery")
                assert queued == size * len(batches), (name, queued)
                samples[name].append((cpu / queued * 1e6, redis_used / queued * 1e6))
        line = "  ".join(
            f"{name}: {statistics.median(s[0] for s in runs):6.0f} [{statistics.median(s[1] for s in runs):3.0f}]"
            for name, runs in samples.items()
        )
        print(f"  batch of {size:>2}  {line}")


# --- consuming ----------------------------------------------------------------------------


def consume_child(args) -> None:
    """A worker process with the project's Celery settings, `--transport` as its broker transport."""
    import django

    django.setup()
    from celery import Celery

    from conversations.queueing import enqueue

    app = Celery("bench_noop")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_transport = None if args.transport == "kombu" else args.transport
    app.conf.worker_hijack_root_logger = False
    state = {"n": 0, "start": 0.0}
    total = args.tasks

    @app.task(name="bench.sink", ignore_result=True, queue=SINK_QUEUE)
    def sink(pk):
        pass

    @app.task(name="bench.noop", ignore_result=True)
    def noop(pk):
        if args.follow_up:
            enqueue(sink, [pk])
        state["n"] += 1
        if state["n"] == 1:
            state["start"] = time.process_time()
        elif state["n"] == total:
            used = time.process_time() - state["start"]
            # To the real stdout: the worker redirects `print` to its logger.
            os.write(1, f"RESULT {used / (total - 1) * 1e6:.1f}\n".encode())
            os._exit(0)  # a bench child: nothing to hand back

    with app.producer_or_acquire() as producer, producer.batch(max_size=500):
        for pk in range(total):
            noop.apply_async((pk,), producer=producer, queue=NOOP_QUEUE, retry=False)
    # The pool is the settings' CELERY_WORKER_POOL, as for `celery worker` in the Procfile.
    app.worker_main(
        ["worker", "-Q", NOOP_QUEUE, "-c", str(args.concurrency), "--without-gossip",
         "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
    )


def consume_measure(args) -> None:
    import redis

    transports = args.transports.split(",")
    client = redis.Redis.from_url(args.redis_url)
    print(f"consume: worker CPU per task (µs), {args.tasks} tasks, concurrency {args.concurrency}, median of {args.rounds}")
    cases = [(transport, follow_up) for follow_up in (False, True) for transport in transports]
    samples: dict[tuple[str, bool], list[float]] = {case: [] for case in cases}
    for _ in range(args.rounds):
        for transport, follow_up in cases:
            client.delete(NOOP_QUEUE, SINK_QUEUE)
            out = subprocess.run(
                [sys.executable, __file__, "--consume-child", "--transport", transport, "--tasks", str(args.tasks),
                 "--concurrency", str(args.concurrency), "--redis-url", args.redis_url]
                + (["--follow-up"] if follow_up else []),
                capture_output=True, text=True, timeout=600, check=False, env={**os.environ, **environment(args.redis_url)},
            )
            results = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if not results:
                sys.exit(f"worker child failed:\n{out.stdout}\n{out.stderr}")
            samples[(transport, follow_up)].append(float(results[0].split()[1]))
    client.delete(NOOP_QUEUE, SINK_QUEUE)
    for (transport, follow_up), values in samples.items():
        what = "no-op, queues one more" if follow_up else "no-op"
        print(f"  {what:24} {transport:28} {statistics.median(values):6.0f}   (runs: {', '.join(f'{v:.0f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=["publish", "consume", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--batches", default="1,4,50")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64, help="the worker's (the Procfile's default)")
    parser.add_argument("--transports", default="kombu", help="consume side: kombu, or module:Transport, comma-separated")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--consume-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--transport", default="kombu", help=argparse.SUPPRESS)
    parser.add_argument("--follow-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batches = [int(n) for n in args.batches.split(",")]
    os.environ.update(environment(args.redis_url))
    if args.consume_child:
        return consume_child(args)
    if args.side in ("publish", "both"):
        publish_measure(args)
    if args.side in ("consume", "both"):
        consume_measure(args)


if __name__ == "__main__":
    main()
