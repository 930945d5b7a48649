#!/usr/bin/env python3
"""A worker killed outright while its customers wait for the model, with the product's defaults.

    .venv/bin/python bench/worker_kill.py [--customers 200] [--delay 10] [--workers 2]

The whole stack of `bench/burst.py` (the Procfile's web, `--workers` workers and beat; fake
OpenAI and Graph API; database `wb_burst`, Redis db 6), with LEASE_SECONDS, the sweeper's
schedule and every other setting at the product's defaults. `--customers` customers write one
text each; once the quiet period is over and every reply is waiting for the model (`--delay`
seconds), the first worker's process group is killed with SIGKILL. Printed: the customers
answered 0, 1 and 2+ times, and how long after the kill the last one was answered (the
promise: exactly once, within 2 minutes). Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import shlex
import signal
import subprocess
import time

from burst import (  # same folder
    DATABASE_URL,
    LOG_DIR,
    PHONE_NUMBER_ID,
    REDIS_URL,
    ROOT,
    SENDS_FILE,
    Sends,
    Stack,
    burst_post,
    database_fresh,
    fake_graph_serve,
    fake_openai_serve,
    procfile,
    redis_flush,
    signed_request,
    stack_environment,
    wa_id_for,
    wait_for,
    web_ready,
)
from support import free_port  # bench/support.py

PROMISE_SECONDS = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--delay", type=float, default=10.0, help="the fake model's latency: the replies in flight at the kill")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to watch for second answers after the last first one")
    args = parser.parse_args()

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    SENDS_FILE.write_text("")
    stack = Stack()
    try:
        web_port, openai_port, graph_port = free_port(), free_port(), free_port()
        app_secret = secrets.token_hex(16)
        env = stack_environment(web_port=web_port, openai_port=openai_port, graph_port=graph_port, app_secret=app_secret, db_pool=10)
        for name in ("LEASE_SECONDS", "INBOUND_SWEEP_AFTER_SECONDS", "TURN_MAX_ATTEMPTS"):
            env.pop(name, None)  # the product's defaults
        commands = procfile()
        stack.fake(fake_openai_serve, openai_port, args.delay, 0.0)
        stack.fake(fake_graph_serve, graph_port, PHONE_NUMBER_ID, str(SENDS_FILE))
        sends = Sends(SENDS_FILE)
        database_fresh(DATABASE_URL)
        redis_flush(REDIS_URL)
        subprocess.run(["/bin/sh", "-c", commands["release"]], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True)
        stack.start("web", commands["web"].replace("0.0.0.0:", "127.0.0.1:"), env)
        for i in range(1, args.workers + 1):
            stack.start(f"worker{i}", f"{commands['worker']} -n kill{i}@%h", env)
        stack.start("beat", f"{commands['beat']} --schedule {shlex.quote(str(LOG_DIR / 'celerybeat-schedule'))}", env)
        wait_for("the web process", lambda: web_ready(web_port), 60, stack)
        for i in range(1, args.workers + 1):
            path = stack.logs[f"worker{i}"]
            wait_for(f"worker{i}", lambda path=path: b" ready." in path.read_bytes(), 60, stack)

        customers = [wa_id_for(900, c) for c in range(args.customers)]
        requests = [
            signed_request(host=f"127.0.0.1:{web_port}", run=900, index=i, wa_id=wa_id, app_secret=app_secret, stamp=secrets.token_hex(3))
            for i, wa_id in enumerate(customers)
        ]  # fmt: skip
        asyncio.run(burst_post(port=web_port, requests=requests, connections=20, seconds=2.0))
        # The quiet period (3 s) over, every reply is waiting for the model: kill the first worker.
        time.sleep(3.0 + min(args.delay / 2, 3.0))
        victim = dict(stack.processes)["worker1"]
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        print(f"killed worker1 (SIGKILL) with {args.customers} customers' replies waiting for the model ({args.delay:g} s)", flush=True)

        deadline = killed_at + args.timeout
        while time.time() < deadline:
            sends.read()
            if all(c in sends.by_customer for c in customers):
                break
            time.sleep(0.5)
        time.sleep(args.settle)
        sends.read()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()

    answers = collections.Counter(min(len(sends.by_customer.get(c, [])), 2) for c in customers)
    firsts = [sends.by_customer[c][0] for c in customers if c in sends.by_customer]
    last = max(firsts) - killed_at if firsts else float("nan")
    after_kill = sorted(t - killed_at for t in firsts if t > killed_at)
    print(f"  customers answered 0x {answers[0]}, 1x {answers[1]}, 2+x {answers[2]}")
    print(f"  answered after the kill: {len(after_kill)}; the last {last:.1f} s after it (promise: {PROMISE_SECONDS:.0f} s)")
    ok = answers[0] == 0 and answers[2] == 0 and last <= PROMISE_SECONDS
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
