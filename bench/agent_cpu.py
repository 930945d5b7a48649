"""CPU per customer text in the worker's code, one text at a time (no concurrency, no load).

    .venv/bin/python bench/agent_cpu.py [--texts 400]

The concurrent bench (`agent_load.py`) is what the issue's target is about, but on a shared
machine its figures move with the neighbours' load. This one runs the turn (`conversations.turn.message_handle`
on the worker's event loop: claim, extraction beside the reply, commit, delivery on the
sandbox channel) for one stored text after another, against the fake OpenAI of `agent_load.py`
answering at once, and prints the CPU it cost this process (all threads) and the
PostgreSQL backends per text: a figure to compare two versions of the code, interleaved.
Database `wb_agent_cpu` (dropped and re-created).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

from agent_load import PostgresCPU, bench_environment, fake_openai_serve  # same folder
from support import database_ensure, free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "wb_agent_cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--customers", type=int, default=50)
    args = parser.parse_args()

    port = free_port()
    ready = multiprocessing.Event()
    fake = multiprocessing.Process(target=fake_openai_serve, args=(port, 0.0, ready), daemon=True)
    fake.start()
    ready.wait(10)
    env = {**bench_environment(openai_port=port, db_pool=4, db_name=DB_NAME), "DJANGO_SETTINGS_MODULE": "whatsbot.settings"}
    os.environ.update(env)
    database_ensure(env["DATABASE_URL"], fresh=True)
    import subprocess

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=os.environ, check=True)
    import django

    django.setup()
    from django.db import connection

    from conversations import runtime, turn
    from conversations.models import Channel, Conversation, Message, Provider
    from profiles.models import ClientProfile

    def inbound_handle(*, message_id: int) -> str:
        return runtime.submit(turn.message_handle, message_id).result()

    channel = Channel.objects.create(name="Bench", provider=Provider.SANDBOX, phone_number_id="bench")
    conversations = [
        Conversation.objects.create(channel=channel, profile=ClientProfile.objects.create(wa_id=f"39300{i:07d}"))
        for i in range(args.customers)
    ]

    def store(n: int) -> int:
        return Message.objects.create(
            conversation=conversations[n % len(conversations)], direction="in", author="customer", type="text",
            text=f"Ciao, messaggio {n}", wamid=f"wamid.cpu.{n}", status="received",
        ).pk  # fmt: skip

    for n in range(20):  # warm-up: connections, prepared statements, SDK clients
        assert inbound_handle(message_id=store(n)) == "sent"
    pg = PostgresCPU(DB_NAME)
    cpu = wall = pg_cpu = 0.0
    outcomes: dict[str, int] = {}
    n = 0
    while n < args.texts:
        # One new text per customer, then each handled: every text is a burst of one.
        ids = [store(20 + n + i) for i in range(min(len(conversations), args.texts - n))]
        connection.close()
        pg.sample()
        pg_before, cpu0, wall0 = pg.total(), time.process_time(), time.perf_counter()
        for pk in ids:
            outcome = inbound_handle(message_id=pk)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        cpu, wall = cpu + time.process_time() - cpu0, wall + time.perf_counter() - wall0
        pg.sample()
        pg_cpu += pg.total() - pg_before
        n += len(ids)
    fake.terminate()
    print(f"agent CPU (the worker's event loop): {n} texts one at a time, zero-delay fake OpenAI, sandbox channel ({outcomes})")
    print(f"  this process (all threads)   {cpu / n * 1000:6.2f} ms per text")
    print(f"  PostgreSQL backends          {pg_cpu / n * 1000:6.2f} ms per text")
    print(f"  wall                         {wall / n * 1000:6.2f} ms per text   (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
