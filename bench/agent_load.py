"""Load on the AI agent: N customers talking at once through the real Celery worker.

    .venv/bin/python bench/agent_load.py [--customers 250] [--think 1.0] [--seconds 30] [--delay 2.0]
                                         [--workers 2] [--concurrency 16] [--db-pool 20] [--unbatched]

What runs, all on this machine:
- a fake OpenAI (asyncio HTTP server, own process) that answers `/v1/responses` after a
  fixed delay (the model's latency, default 2 s) and `/v1/conversations` at once;
- real Celery worker processes (subprocesses) on Redis db 4 and PostgreSQL database
  `wb_agent_bench`, with the pool and concurrency given;
- N customers in a closed loop: each sends a message through the real webhook service
  (signed Meta payload → `webhook_receive` → stored → `inbound_handle` queued), waits for
  the bot's reply to be sent, pauses to read and type (`--think`, exponential, mean 1 s;
  250 customers then write about 80 messages a second, the target's rate), and sends the
  next one. `--think 0` writes at once: the closed loop then gathers the customers into
  waves (replies that land together bring the next messages together). By default the
  messages due at the same moment share one signed POST, as Meta batches deliveries under
  load (`--unbatched`: one POST per message); the mode is printed.

REPLY_DEBOUNCE_SECONDS is 0 here: the quiet period would only add a constant wait. The
channel is the sandbox one, so "sending" to WhatsApp costs nothing and the figures are the
bot's. Printed: replies per second sustained, end-to-end latency p50/p95 minus the
simulated model delay (the bot's own overhead: webhook to reply sent), worker RSS memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from support import database_ensure, free_port  # bench/support.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "wb_agent_bench"
REDIS_URL = "redis://127.0.0.1:6379/4"


def bench_environment(*, openai_port: int, db_pool: int, db_name: str = DB_NAME) -> dict[str, str]:
    """The settings of every process of the agent benches (also `bench/agent_cpu.py`)."""
    return {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "DEBUG": "false",
        "WHATSBOT_TESTING": "1",
        "LOG_LEVEL": "WARNING",
        "OPENAI_API_KEY": "sk-bench-0000000000000000",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{openai_port}/v1",
        "OPENAI_MODEL": "gpt-4.1",
        "REPLY_DEBOUNCE_SECONDS": "0",
        "DATABASE_POOL_MAX_SIZE": str(db_pool),
        "WHATSAPP_PHONE_ID": "",
    }


# --- the fake OpenAI ------------------------------------------------------------------------
def fake_openai_serve(port: int, delay: float, ready) -> None:
    counter = iter(range(1, 10**9))

    def respond(path: str, body: dict) -> tuple[bool, dict]:
        if path.endswith("/conversations"):
            return False, {"id": f"conv_{next(counter)}", "object": "conversation", "created_at": 0, "metadata": {}}
        if path.endswith("/items"):
            return False, {"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False}
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            text = json.dumps({key: None for key in fmt["schema"]["properties"]})
        else:
            text = "Certo! Come posso aiutarti?"
        return True, {
            "id": f"resp_{next(counter)}", "object": "response", "created_at": 0, "status": "completed",
            "model": body.get("model", "gpt-4.1"), "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": "msg", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 900, "input_tokens_details": {"cached_tokens": 800}, "output_tokens": 20,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 920},
        }  # fmt: skip

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                slow, payload = respond(path, body)
                if slow:
                    await asyncio.sleep(delay)
                data = json.dumps(payload).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- helpers --------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in out]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if children:  # a prefork worker's pool processes
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for child in map(int, out):
            try:
                used += cpu_seconds(child)
            except OSError:
                pass
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured period, after a warm-up")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--delay", type=float, default=2.0, help="the fake model's latency")
    parser.add_argument("--pool", default="", help="Celery pool (default: the settings' CELERY_WORKER_POOL)")
    parser.add_argument("--concurrency", type=int, default=16, help="Celery threads per worker process (texts go to its event loop)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one per core)")
    parser.add_argument("--db-pool", type=int, default=20, help="DATABASE_POOL_MAX_SIZE per worker process")
    parser.add_argument("--worker-log", default="WARNING", help="the worker's log level (var/bench-agent-worker.log)")
    parser.add_argument(
        "--unbatched", action="store_true",
        help="one webhook POST per message (default: the messages due at the same moment share one POST, as Meta batches)",
    )  # fmt: skip
    parser.add_argument(
        "--think", type=float, default=1.0,
        help="mean seconds a customer takes to read the reply and write the next message (exponential; 0: at once)",
    )  # fmt: skip
    parser.add_argument("--senders", type=int, default=2, help="batched mode: threads posting webhooks at once")
    parser.add_argument("--batch-max", type=int, default=100, help="batched mode: messages per POST at most")
    args = parser.parse_args()

    port = free_port()
    ready = multiprocessing.Event()
    fake = multiprocessing.Process(target=fake_openai_serve, args=(port, args.delay, ready), daemon=True)
    fake.start()
    ready.wait(10)

    env = {**os.environ, **bench_environment(openai_port=port, db_pool=args.db_pool)}
    database_ensure(env["DATABASE_URL"], fresh=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()

    os.environ.update({**env, "DATABASE_POOL_MAX_SIZE": "20"})
    os.environ["DJANGO_SETTINGS_MODULE"] = "whatsbot.settings"
    import django

    django.setup()
    from conversations.models import Channel, Message, Provider
    from integrations.meta.signature import HEADER, sign
    from webhooks.services import webhook_receive

    channel = Channel.objects.create(name="Bench", provider=Provider.SANDBOX, phone_number_id="bench", app_secret="bench-secret-0123456789")
    # The driver stands in for the web process (webhook_receive runs here): as whatsbot/wsgi.py.
    from whatsbot import gctune

    gctune.process_ready()

    log = open(ROOT / "var" / "bench-agent-worker.log", "w")
    workers = [
        subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "whatsbot", "worker", f"--loglevel={args.worker_log}", *([f"--pool={args.pool}"] if args.pool else []),
             f"--concurrency={args.concurrency}", "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"bench{i}@%h"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        for i in range(args.workers)
    ]
    time.sleep(4)

    def payload(*due: tuple[str, int]) -> bytes:
        """One Meta delivery with the messages of the customers `due` ((wa_id, n) each)."""
        return json.dumps({
            "object": "whatsapp_business_account",
            "entry": [{"id": "bench", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "000", "phone_number_id": "bench"},
                "contacts": [{"profile": {"name": f"Cliente {wa_id}"}, "wa_id": wa_id} for wa_id, _ in due],
                "messages": [{"from": wa_id, "id": f"wamid.bench.{wa_id}.{n}", "timestamp": str(int(time.time())),
                              "type": "text", "text": {"body": f"Ciao, messaggio {n}"}} for wa_id, n in due],
            }}]}],
        }).encode()  # fmt: skip

    # Batched mode: a customer's due message waits here (with a slot for its id) until a
    # sender thread posts it together with every other message due at that moment, in one
    # signed body, as Meta does under load. No timer: each POST takes what accumulated
    # during the previous one.
    due_messages: queue.Queue = queue.Queue()
    batch_sizes: list[int] = []

    def sender() -> None:
        while not stop.is_set():
            try:
                batch = [due_messages.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < args.batch_max:
                try:
                    batch.append(due_messages.get_nowait())
                except queue.Empty:
                    break
            body = payload(*[(wa_id, n) for wa_id, n, _ in batch])
            started = time.time()
            receipt = webhook_receive(body=body, headers={HEADER: sign(body, channel.app_secret)})
            receive_times.append(time.time() - started)
            batch_sizes.append(len(batch))
            connection.close()
            # The messages are stored (and numbered) in the order of the body.
            assert len(receipt.new_message_ids) == len(batch), receipt
            for (_, _, slot), message_id in zip(batch, receipt.new_message_ids):
                slot.append(message_id)
                slot[0].set()

    stop = threading.Event()
    # (reply seen at, customer message id, reply id, webhook call started at, reply sent at)
    latencies: list[tuple[float, int, int, float, float]] = []
    waiting: dict[int, tuple[int, float, threading.Event]] = {}  # conversation → (message id, started, event)
    lock = threading.Lock()
    receive_times: list[float] = []
    from django.db import connection

    def poller() -> None:
        # One query for every customer (not one each): the driver must not load the database.
        # Every reply a customer waits for has a higher id than the customer's message, so the
        # scan starts at the oldest waiting message. (Not at the last reply seen: a reply row
        # committed after a newer one was seen has a lower id, and its customer would wait
        # forever: a fifth of the customers did, in a 30 s run.)
        while not stop.is_set():
            with lock:
                floor = min((entry[0] for entry in waiting.values()), default=None)
            rows = []
            if floor is not None:
                rows = list(
                    Message.objects.filter(direction="out", pk__gt=floor, sent_at__isnull=False)
                    .order_by("pk").values_list("pk", "conversation_id", "sent_at")
                )  # fmt: skip
            with lock:
                for pk, conversation_id, sent_at in rows:
                    entry = waiting.get(conversation_id)
                    if entry and pk > entry[0]:
                        del waiting[conversation_id]
                        latencies.append((time.time(), entry[0], pk, entry[1], sent_at.timestamp()))
                        entry[2].set()
            time.sleep(0.05)
        connection.close()

    def customer(index: int) -> None:
        wa_id = f"39300{index:07d}"
        n = 0
        done = threading.Event()
        conversation_id = None
        # Customers who read and type: independent random pauses keep them from moving in
        # step (with none, the closed loop gathers them into waves that arrive together).
        pause = random.Random(index)
        try:
            while not stop.is_set():
                if args.think > 0 and stop.wait(pause.expovariate(1 / args.think)):
                    return
                n += 1
                started = time.time()
                if args.unbatched:
                    body = payload((wa_id, n))
                    receipt = webhook_receive(body=body, headers={HEADER: sign(body, channel.app_secret)})
                    receive_times.append(time.time() - started)
                    (message_id,) = receipt.new_message_ids
                else:
                    slot: list = [threading.Event()]
                    due_messages.put((wa_id, n, slot))
                    while not slot[0].wait(0.5):
                        if stop.is_set():
                            return
                    message_id = slot[1]
                if conversation_id is None:
                    conversation_id = Message.objects.values_list("conversation_id", flat=True).get(pk=message_id)
                connection.close()  # back to the pool while waiting
                done.clear()
                with lock:
                    waiting[conversation_id] = (message_id, started, done)
                while not stop.is_set() and not done.wait(0.5):
                    pass
        finally:
            connection.close()

    others = {"fake OpenAI": fake.pid, "redis-server (shared)": redis_pid()}
    threading.Thread(target=poller, daemon=True).start()
    if not args.unbatched:
        for _ in range(args.senders):
            threading.Thread(target=sender, daemon=True).start()
    threads = [threading.Thread(target=customer, args=(i,), daemon=True) for i in range(args.customers)]
    t0 = time.time()
    for t in threads:
        t.start()
        time.sleep(args.warmup / 2 / args.customers)  # ramp up over half the warm-up
    time.sleep(max(0.0, args.warmup - (time.time() - t0)))
    measure_from = time.time()
    cpu0 = {"worker(s)": sum(cpu_seconds(w.pid, children=True) for w in workers), "driver (webhook + customers)": own_cpu()}
    cpu0.update({name: cpu_seconds(pid) for name, pid in others.items() if pid})
    pg = PostgresCPU(DB_NAME)
    machine0 = machine_cpu()
    peak_rss = peak_rss_each = 0.0
    while time.time() - measure_from < args.seconds:
        time.sleep(1)
        pg.sample()
        each = [rss_mb(w.pid) for w in workers]
        peak_rss, peak_rss_each = max(peak_rss, sum(each)), max(peak_rss_each, *each)
    measure_to = time.time()
    cpu1 = {"worker(s)": sum(cpu_seconds(w.pid, children=True) for w in workers), "driver (webhook + customers)": own_cpu()}
    cpu1.update({name: cpu_seconds(pid) for name, pid in others.items() if pid})
    pg.sample()
    machine = machine_cpu() - machine0
    load = os.getloadavg()
    stop.set()
    for t in threads:
        t.join(10)

    window = [row for row in latencies if measure_from <= row[0] <= measure_to]
    # Where the time goes, from the rows' own timestamps (same clock: one machine).
    ids = [r[1] for r in window] + [r[2] for r in window]
    created = dict(Message.objects.filter(pk__in=ids).values_list("pk", "created_at"))
    to_stored = sorted(created[r[1]].timestamp() - r[3] for r in window)
    to_reply_row = sorted(created[r[2]].timestamp() - created[r[1]].timestamp() - args.delay for r in window)
    to_sent = sorted(r[4] - created[r[2]].timestamp() for r in window)
    # The driver's own delay (not the bot's): the customer learns of the reply from the poller.
    to_seen = sorted(r[0] - r[4] for r in window)
    connection.close()
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()
    fake.terminate()

    if not window:
        print("no reply in the measured period: see var/bench-agent-worker.log")
        sys.exit(1)
    overhead = sorted(r[4] - r[3] - args.delay for r in window)
    seconds = measure_to - measure_from
    rate = len(window) / seconds
    think = f", think time {args.think:.1f}s (exponential)" if args.think > 0 else ", no think time"
    print(f"agent load: {args.customers} customers (closed loop{think}), model delay {args.delay:.1f}s, REPLY_DEBOUNCE_SECONDS=0, "
          f"{args.workers} worker(s) pool={args.pool or 'whatsbot.workerpool'} concurrency={args.concurrency}, db pool {args.db_pool} each")  # fmt: skip
    print(f"  replies/s sustained        {rate:8.1f}   ({len(window)} replies in {seconds:.0f}s)")
    print(f"  overhead p50 / p95         {pct(overhead, 50) * 1000:8.0f} / {pct(overhead, 95) * 1000:.0f} ms   (webhook call -> reply sent, minus the delay; "
          f"p99 {pct(overhead, 99) * 1000:.0f}, max {overhead[-1] * 1000:.0f}, mean {statistics.mean(overhead) * 1000:.0f})")
    print(f"    webhook -> stored        {pct(to_stored, 50) * 1000:8.0f} / {pct(to_stored, 95) * 1000:.0f} ms")
    print(f"    stored -> reply row      {pct(to_reply_row, 50) * 1000:8.0f} / {pct(to_reply_row, 95) * 1000:.0f} ms   (minus the delay: queue waits + agent)")
    print(f"    reply row -> sent        {pct(to_sent, 50) * 1000:8.0f} / {pct(to_sent, 95) * 1000:.0f} ms")
    print(f"  (driver) sent -> seen      {pct(to_seen, 50) * 1000:8.0f} / {pct(to_seen, 95) * 1000:.0f} ms   "
          f"(a customer's next message waits for this; cycle {args.customers / max(rate, 0.001):.2f} s per customer)")
    if args.unbatched:
        mode = "one message per POST"
    else:
        mode = f"batched: {statistics.mean(batch_sizes or [0]):.1f} messages per POST on average, at most {max(batch_sizes or [0])}"
    print(f"  webhook_receive p50 / p95  {pct(sorted(receive_times), 50) * 1000:8.0f} / {pct(sorted(receive_times), 95) * 1000:.0f} ms "
          f"per POST (in the driver; {mode})")
    print(f"  worker RSS (peak)          {peak_rss_each:8.0f} MiB per process, {peak_rss:.0f} MiB all")
    cpu = {name: cpu1[name] - cpu0[name] for name in cpu1}
    cpu["postgres (bench db backends)"] = pg.total()
    print(f"  CPU, % of one core, and ms per reply (the machine has {os.cpu_count()} cores):")
    for name, used in cpu.items():
        print(f"    {name:30s} {used / seconds * 100:5.0f} %   {used / max(1, len(window)) * 1000:6.1f} ms")
    total = sum(cpu.values())
    print(f"    {'total':30s} {total / seconds * 100:5.0f} %   {total / max(1, len(window)) * 1000:6.1f} ms")
    # The machine is shared: what everything else used meanwhile says how far to trust the rest.
    print(f"  machine: all processes {machine / seconds * 100:.0f} % of one core, others than the above "
          f"{max(0.0, machine - total) / seconds * 100:.0f} %; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def pct(values: list[float], p: int) -> float:
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def machine_cpu() -> float:
    """CPU seconds used by the whole machine so far (every core, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def redis_pid() -> int | None:
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


class PostgresCPU:
    """CPU used by the PostgreSQL backends serving one database (pools keep them alive)."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample()

    def sample(self) -> None:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.dbname}'"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        for pid in map(int, out):
            try:
                used = cpu_seconds(pid)
            except OSError:
                continue
            self.first.setdefault(pid, used if not self.last else 0.0)
            self.last[pid] = used

    def total(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


if __name__ == "__main__":
    main()
