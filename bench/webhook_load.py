#!/usr/bin/env python3
"""Load benchmark for the WhatsApp webhook (`POST /webhooks/whatsapp/`).

By default it starts the real stack itself: the Procfile's `web:` command (gunicorn serving
`whatsbot.wsgi`) on a loopback port, against PostgreSQL (`DATABASE_URL`, default a dedicated
`whatsbot_bench` database it creates and migrates) and Redis (`REDIS_URL`, default db 9,
flushed first). No Celery worker runs unless `--with-worker`: the bench measures ingestion,
and the tasks pile up in Redis where `LLEN celery` counts them exactly.

It fires correctly signed, Meta-shaped deliveries (unique wamids, many distinct customers)
and prints accepted requests/s and messages/s, ack latency p50/p99 and sent / stored / queued
counts, which must match (a MISMATCH is printed loudly and the exit status is 1).

Scenarios (`--scenarios`, default all):
  a  single-message POSTs, flat out
  b  batches of 50 messages per POST (Meta batches deliveries), flat out
  c  single-message POSTs at a fixed 200 requests/s, for the latency percentiles
  d  duplicates: re-send deliveries already sent; nothing new may be stored or queued
  e  delivery statuses (delivered, then read, for outbound messages), one per POST, flat out

The load generator is one asyncio loop writing pre-built, pre-signed requests on keep-alive
sockets, so it takes little of the machine's CPU away from the server it measures.

    make bench-webhook
    .venv/bin/python bench/webhook_load.py --duration 10 --scenarios a,b
    .venv/bin/python bench/webhook_load.py --url http://127.0.0.1:8000 --app-secret ... \
        --phone-number-id ...   # a server you started yourself (same DATABASE_URL/REDIS_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support import database_ensure, free_port  # bench/support.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/whatsbot_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
WEBHOOK_PATH = "/webhooks/whatsapp/"
QUEUE = "celery"  # Celery's default queue: a Redis list, one entry per queued task


# --- set-up -------------------------------------------------------------------------------




def server_environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DEBUG="0",
        WHATSBOT_TESTING="0",
        SECRET_KEY="bench-" + secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # The bench makes its own channel; a channel from a local .env would only add noise.
        WHATSAPP_PHONE_ID="",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    if args.graph_url:
        env["WHATSAPP_API_BASE_URL"] = args.graph_url
    return env


def django_setup(env: dict[str, str]) -> None:
    for key in ("DATABASE_URL", "REDIS_URL", "DEBUG", "WHATSBOT_TESTING", "SECRET_KEY", "ALLOWED_HOSTS", "WHATSAPP_PHONE_ID"):
        os.environ[key] = env[key]
    os.environ["DJANGO_SETTINGS_MODULE"] = "whatsbot.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def channel_ensure(*, phone_number_id: str, app_secret: str) -> None:
    from conversations.models import Channel, Provider

    Channel.objects.update_or_create(
        phone_number_id=phone_number_id,
        defaults={
            "name": "Bench number",
            "provider": Provider.META,
            "display_phone_number": "15550001234",
            "business_account_id": "900000000000001",
            "access_token": "bench-token-" + secrets.token_hex(8),
            "app_secret": app_secret,
            "verify_token": "bench-verify",
            "is_active": True,
        },
    )


def procfile_web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line[len("web:") :].strip()
    raise SystemExit("Procfile has no web: line")


class Stack:
    """The processes the bench starts (and stops, by their own process group)."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.log_dir = ROOT / "var" / "bench"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        process = subprocess.Popen(
            ["/bin/sh", "-c", "exec " + command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


class FakeGraph(BaseHTTPRequestHandler):
    """Answers every Graph API call (send, mark read) with success, for --with-worker."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"success": True, "messages": [{"id": "wamid.out." + secrets.token_hex(12)}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


# --- deliveries ---------------------------------------------------------------------------


@dataclass
class Delivery:
    request: bytes  # the whole HTTP request, signed
    wamids: list[str]


class Builder:
    """Meta-shaped webhook bodies: unique wamids, customers drawn from a large pool."""

    def __init__(self, *, host: str, phone_number_id: str, app_secret: str, customers: int, run: str) -> None:
        from integrations.meta.signature import sign

        self.sign = sign
        self.host = host
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.customers = customers
        self.run = run
        self.next_customer = 0

    def wamid(self, scenario: str, n: int) -> str:
        # Real wamids are ~60 base64 characters; keep the length realistic.
        return f"wamid.HBgL{self.run}{scenario}{n:010d}" + "QzRFQUE5RTg2NUQ3RTJEAA"

    def prefix(self, scenario: str) -> str:
        return f"wamid.HBgL{self.run}{scenario}"

    def delivery(self, scenario: str, first: int, count: int) -> Delivery:
        now = int(time.time())
        contacts, messages, wamids = [], [], []
        for n in range(first, first + count):
            wa_id = f"39{3_000_000_000 + self.next_customer % self.customers:010d}"
            self.next_customer += 1
            wamid = self.wamid(scenario, n)
            wamids.append(wamid)
            contacts.append({"profile": {"name": f"Cliente {wa_id[-4:]}"}, "wa_id": wa_id})
            messages.append(
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(now),
                    "text": {"body": f"Buongiorno, vorrei sapere a che punto è l'ordine {n}."},
                    "type": "text",
                }
            )
        return Delivery(self._request({"contacts": contacts, "messages": messages}), wamids)

    def status_delivery(self, wamid: str, status: str, timestamp: int, wa_id: str) -> Delivery:
        """One delivery status for an outbound message, as Meta sends it (one per POST)."""
        item = {
            "id": wamid,
            "status": status,
            "timestamp": str(timestamp),
            "recipient_id": wa_id,
            "conversation": {"id": "b0f1e2d3c4a5968778695a4b3c2d1e0f", "origin": {"type": "service"}},
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "service", "type": "regular"},
        }
        return Delivery(self._request({"statuses": [item]}), [])

    def _request(self, value: dict) -> bytes:
        """The signed HTTP request of a Meta delivery whose change carries `value`'s keys."""
        body = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "900000000000001",
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550001234", "phone_number_id": self.phone_number_id},
                                **value,
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: {self.host}\r\n"
            "User-Agent: facebookexternalua\r\n"
            "Accept: */*\r\n"
            "Content-Type: application/json\r\n"
            # Meta reaches the app through a TLS-terminating proxy.
            "X-Forwarded-Proto: https\r\n"
            f"X-Hub-Signature-256: {self.sign(raw, self.app_secret)}\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n"
        ).encode()
        return head + raw

    def deliveries(self, scenario: str, *, requests: int, per_request: int, start: int = 0) -> list[Delivery]:
        return [self.delivery(scenario, start + i * per_request, per_request) for i in range(requests)]


# --- load generation ----------------------------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> int:
        """Send one request, read the whole response; return its status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if match:
            await self.reader.readexactly(int(match.group(1)))
        if re.search(rb"(?i)\r\nconnection:\s*close", head) or not match:
            if not match:
                await self.reader.read()
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Result:
    name: str
    sent_requests: int = 0
    sent_messages: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    wamids: list[str] = field(default_factory=list)
    sent: list[Delivery] = field(default_factory=list)

    def record(self, delivery: Delivery, status: int | None, latency: float, error: str = "") -> None:
        self.sent_requests += 1
        self.sent_messages += len(delivery.wamids)
        self.sent.append(delivery)
        if status is None:
            self.errors[error] = self.errors.get(error, 0) + 1
        else:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latencies.append(latency)


async def _one(conn: Connection, delivery: Delivery, result: Result, started: float) -> None:
    try:
        status = await conn.request(delivery.request)
        result.record(delivery, status, time.perf_counter() - started)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        conn.close()
        result.record(delivery, None, 0.0, type(exc).__name__)


async def flat_out(host: str, port: int, deliveries: list[Delivery], *, connections: int, duration: float, name: str) -> Result:
    """Every connection sends its next delivery as soon as the previous one is answered."""
    result = Result(name)
    pending = iter(deliveries)
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        conn = Connection(host, port)
        while time.perf_counter() < deadline:
            delivery = next(pending, None)
            if delivery is None:
                break
            await _one(conn, delivery, result, time.perf_counter())
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.elapsed = time.perf_counter() - t0
    if name in ("a", "b") and next(pending, None) is None and result.elapsed < duration * 0.95:
        print(f"  note: ran out of pre-built deliveries after {result.elapsed:.1f}s (raise --max-rate / --max-message-rate)")
    return result


async def fixed_rate(host: str, port: int, deliveries: list[Delivery], *, rate: float, connections: int, name: str) -> Result:
    """Open-loop: delivery i is due at t0 + i/rate. Latency counts from when it was due, so a
    slow server cannot hide its queueing by slowing the sender down (coordinated omission)."""
    result = Result(name)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(Connection(host, port))

    async def send(delivery: Delivery, due: float) -> None:
        conn = await idle.get()
        await _one(conn, delivery, result, due)
        idle.put_nowait(conn)

    tasks = []
    t0 = time.perf_counter() + 0.05
    for i, delivery in enumerate(deliveries):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(delivery, due)))
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - t0
    while not idle.empty():
        idle.get_nowait().close()
    return result


# --- CPU accounting -----------------------------------------------------------------------


def _jiffies(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds used by each part of the stack during a scenario, read from /proc.

    This machine is shared: the "other" column is CPU that none of the stack's processes
    used (other people's work), which makes a noisy figure recognisable as such."""

    def __init__(self, *, roots: list[int], database: str) -> None:
        self.roots, self.database = roots, database
        self.tick = os.sysconf("SC_CLK_TCK")

    def _groups(self) -> dict[str, list[int]]:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        parents: dict[int, int] = {}
        for pid in pids:
            try:
                parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
        groups: dict[str, list[int]] = {"web+worker": [], "postgres": [], "redis": [], "bench": [os.getpid()]}
        for pid in pids:
            ancestor = pid
            while ancestor > 1 and ancestor not in self.roots:
                ancestor = parents.get(ancestor, 1)
            if ancestor in self.roots:
                groups["web+worker"].append(pid)
                continue
            cmd = _cmdline(pid)
            if cmd.startswith("postgres:"):
                # Backends and autovacuum name their database: count only the bench's. The
                # WAL writer, checkpointer and background writer serve everyone: counted too.
                shared = any(name in cmd for name in ("walwriter", "checkpointer", "background writer"))
                if shared or f" {self.database} " in cmd + " ":
                    groups["postgres"].append(pid)
            elif cmd.startswith("redis-server"):
                groups["redis"].append(pid)
        return groups

    @staticmethod
    def _machine() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values[:8]) - idle, sum(values[:8])

    def snapshot(self) -> dict:
        # Per process, so that a process that exits or starts mid-run (a database connection
        # reaching CONN_MAX_AGE) neither cancels nor inflates the others' figures.
        shot: dict = {name: {pid: _jiffies(pid) for pid in pids} for name, pids in self._groups().items()}
        shot["_busy"], shot["_total"] = self._machine()
        return shot

    @staticmethod
    def _used(before: dict[int, int], after: dict[int, int]) -> int:
        return sum(max(0, jiffies - before.get(pid, 0)) for pid, jiffies in after.items())

    def describe(self, before: dict, after: dict, *, requests: int, messages: int) -> str:
        parts = []
        ours = 0
        for name in ("web+worker", "postgres", "redis", "bench"):
            used = self._used(before.get(name, {}), after.get(name, {}))
            ours += used
            per = used / self.tick * 1000 / max(requests, 1)
            parts.append(f"{name} {used / self.tick:.1f}s ({per:.2f} ms/request)")
        busy = after["_busy"] - before["_busy"]
        total = after["_total"] - before["_total"]
        other = max(0, busy - ours)
        parts.append(f"other processes {other / self.tick:.1f}s")
        return f"  CPU           machine busy {100 * busy / max(total, 1):.0f}%; " + ", ".join(parts)


# --- checking -----------------------------------------------------------------------------


class Counter:
    """What the server stored and queued, read straight from PostgreSQL and Redis."""

    def __init__(self, redis_url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(redis_url)

    def queued(self) -> int:
        return int(self.redis.llen(QUEUE))

    def stored(self, prefix: str) -> int:
        from conversations.models import Message

        return Message.objects.filter(wamid__startswith=prefix).count()

    def events(self) -> int:
        from webhooks.models import WebhookEvent

        return WebhookEvent.objects.count()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def report(result: Result, *, stored: int, expected_stored: int, queued: int, expected_queued: int, events: int) -> bool:
    ok_requests = result.statuses.get(200, 0)
    ms = [x * 1000 for x in result.latencies]
    print(f"  requests sent {result.sent_requests} in {result.elapsed:.2f}s; answers {dict(sorted(result.statuses.items()))}"
          + (f"; transport errors {result.errors}" if result.errors else ""))
    print(f"  accepted      {ok_requests / result.elapsed:8.1f} requests/s   "
          f"{ok_requests * (result.sent_messages / max(result.sent_requests, 1)) / result.elapsed:8.1f} messages/s")
    print(f"  ack latency   p50 {percentile(ms, 50):6.1f} ms   p90 {percentile(ms, 90):6.1f} ms   "
          f"p99 {percentile(ms, 99):6.1f} ms   max {max(ms, default=float('nan')):6.1f} ms")
    print(f"  counts        messages sent {result.sent_messages}   expected new {expected_stored}   "
          f"Message rows stored {stored}   tasks queued {queued} (expected {expected_queued})   webhook events {events}")
    good = stored == expected_stored and queued == expected_queued and events == result.sent_requests and not result.errors
    good = good and ok_requests == result.sent_requests
    if not good:
        print("  " + "!" * 78)
        print("  !!! MISMATCH: sent, stored, queued and answered counts do not agree !!!")
        print("  " + "!" * 78)
    else:
        print("  counts match")
    return good


# --- main ---------------------------------------------------------------------------------


def wait_until_accepting(host: str, port: int, builder: Builder, timeout: float, warmup: float) -> None:
    """Warm up: POST until a signed delivery is accepted (server up, channel cache loaded),
    then a few more so every worker has its connections open."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        delivery = builder.delivery("w", n, 1)
        n += 1
        try:
            status = asyncio.run(flat_out(host, port, [delivery], connections=1, duration=5, name="warm")).statuses
        except OSError:
            status = {}
        if status.get(200):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"server did not accept a signed delivery within {timeout:.0f}s (last answers {status})")
        time.sleep(0.3)
    # Each worker's first requests pay for lazy imports and new connections: keep them
    # out of the figures.
    warm = builder.deliveries("w", requests=int(warmup * 1000), per_request=1, start=n)
    asyncio.run(flat_out(host, port, warm, connections=16, duration=warmup, name="warm"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an already running server (default: start gunicorn from the Procfile)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--scenarios", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (flat out)")
    parser.add_argument("--batch", type=int, default=50, help="messages per POST in scenario b")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s in scenario c")
    parser.add_argument("--duplicates", type=int, default=2000, help="deliveries re-sent in scenario d")
    parser.add_argument("--customers", type=int, default=20000, help="distinct customers (wa_id) in the pool")
    parser.add_argument("--max-rate", type=float, default=4000.0, help="requests/s to pre-build bodies for (flat out)")
    parser.add_argument("--max-message-rate", type=float, default=15000.0, help="messages/s to pre-build batches for (scenario b)")
    parser.add_argument("--web", help="the web command (default: the Procfile's web: line); $PORT is set")
    parser.add_argument("--web-concurrency", help="WEB_CONCURRENCY for the web command")
    parser.add_argument("--with-worker", action="store_true", help="also run a Celery worker (and a fake Graph API)")
    parser.add_argument("--phone-number-id", default="900000000000042")
    parser.add_argument("--app-secret", default="bench-app-secret-" + "0123456789abcdef")
    parser.add_argument("--keep-queue", action="store_true", help="do not flush the Redis db first")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.graph_url = None

    # Two runs against the same database and Redis db would count each other's rows.
    lock = open(ROOT / "var" / "bench-webhook.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another bench/webhook_load.py is running (var/bench-webhook.lock): its counts would mix with ours")
    # Stop the server we started on SIGTERM too (e.g. `timeout`), not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    stack = Stack()
    graph = None
    try:
        if args.with_worker:
            graph = ThreadingHTTPServer(("127.0.0.1", 0), FakeGraph)
            threading.Thread(target=graph.serve_forever, daemon=True).start()
            args.graph_url = f"http://127.0.0.1:{graph.server_address[1]}"
        env = server_environment(args)
        if not args.url:
            database_ensure(args.database_url)
            subprocess.run([str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        django_setup(env)
        channel_ensure(phone_number_id=args.phone_number_id, app_secret=args.app_secret)
        counter = Counter(args.redis_url)
        if not args.keep_queue:
            counter.redis.flushdb()

        if args.url:
            parts = urllib.parse.urlsplit(args.url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            print(f"server: {args.url} (not started by the bench)")
        else:
            host, port = "127.0.0.1", free_port()
            web = args.web or procfile_web_command()
            web_env = dict(env, PORT=str(port))
            if args.web_concurrency:
                web_env["WEB_CONCURRENCY"] = args.web_concurrency
            stack.start("web", web, web_env)
            print(f"server: {web}  (PORT={port}, WEB_CONCURRENCY={web_env.get('WEB_CONCURRENCY', 'unset')})")
        if args.with_worker:
            stack.start("worker", f"{VENV_BIN}/celery -A whatsbot worker --loglevel=WARNING --pool=threads --concurrency=16", env)
            print(f"worker: celery, threads x16; fake Graph API at {args.graph_url}")
        print(f"database {args.database_url}   redis {args.redis_url}   {os.cpu_count()} CPUs")

        run = secrets.token_hex(3)
        builder = Builder(host=f"{host}:{port}", phone_number_id=args.phone_number_id, app_secret=args.app_secret,
                          customers=args.customers, run=run)
        wait_until_accepting(host, port, builder, timeout=60, warmup=args.warmup)
        meter = CpuMeter(roots=[p.pid for p in stack.processes], database=urllib.parse.urlsplit(args.database_url).path.lstrip("/"))

        all_good = True
        sent_before: list[Delivery] = []
        for scenario in scenarios:
            if scenario == "a":
                title = f"(a) single-message POSTs, flat out, {args.connections} connections, {args.duration:.0f}s"
                deliveries = builder.deliveries("a", requests=int(args.max_rate * args.duration), per_request=1)
                run_it = lambda d: flat_out(host, port, d, connections=args.connections, duration=args.duration, name="a")  # noqa: E731
            elif scenario == "b":
                title = f"(b) {args.batch} messages per POST, flat out, {args.connections} connections, {args.duration:.0f}s"
                deliveries = builder.deliveries("b", requests=int(args.max_message_rate * args.duration / args.batch) + 10, per_request=args.batch)
                run_it = lambda d: flat_out(host, port, d, connections=args.connections, duration=args.duration, name="b")  # noqa: E731
            elif scenario == "c":
                title = f"(c) single-message POSTs at a fixed {args.rate:.0f} requests/s, {args.duration:.0f}s"
                deliveries = builder.deliveries("c", requests=int(args.rate * args.duration), per_request=1)
                run_it = lambda d: fixed_rate(host, port, d, rate=args.rate, connections=64, name="c")  # noqa: E731
            elif scenario == "d":
                title = f"(d) duplicates: {args.duplicates} deliveries already sent, re-sent flat out"
                if not sent_before:
                    first = builder.deliveries("d", requests=args.duplicates, per_request=1)
                    asyncio.run(flat_out(host, port, first, connections=args.connections, duration=600, name="d-first"))
                    sent_before = first
                step = max(1, len(sent_before) // args.duplicates)
                deliveries = sent_before[::step][: args.duplicates]
                run_it = lambda d: flat_out(host, port, d, connections=args.connections, duration=600, name="d")  # noqa: E731
            elif scenario == "e":
                title = (f"(e) delivery statuses, one per POST (delivered, then read, for each outbound message), "
                         f"flat out, {args.connections} connections, {args.duration:.0f}s")
                deliveries, status_of = status_deliveries(builder, count=int(args.max_rate * args.duration / 2))
                run_it = lambda d: flat_out(host, port, d, connections=args.connections, duration=args.duration, name="e")  # noqa: E731
            else:
                raise SystemExit(f"unknown scenario {scenario!r}")
            print("\n" + title)
            if scenario != scenarios[0]:
                database_settle()
            stored_before = {p: counter.stored(p) for p in (builder.prefix(x) for x in "abcd")}
            queued_before, events_before = counter.queued(), counter.events()
            cpu_before = meter.snapshot()
            result = asyncio.run(run_it(deliveries))
            cpu_after = meter.snapshot()
            queued, events = counter.queued() - queued_before, counter.events() - events_before
            if scenario == "e":
                all_good &= report_statuses(result, status_of, prefix=builder.prefix("e"), queued=queued, events=events)
            elif scenario == "d":
                stored = sum(counter.stored(p) - n for p, n in stored_before.items())
                all_good &= report(result, stored=stored, expected_stored=0, queued=queued, expected_queued=0, events=events)
            else:
                prefix = builder.prefix(scenario)
                stored = counter.stored(prefix) - stored_before[prefix]
                if args.with_worker:
                    queued = expected = 0  # the worker drains the queue as it fills
                else:
                    expected = result.sent_messages
                all_good &= report(result, stored=stored, expected_stored=result.sent_messages, queued=queued,
                                   expected_queued=expected, events=events)
                sent_before += result.sent
            print(meter.describe(cpu_before, cpu_after, requests=result.sent_requests, messages=result.sent_messages))
        if args.with_worker:
            all_good &= drain(builder, timeout=120)
        print("\nALL COUNTS MATCH" if all_good else "\n!!! MISMATCH in at least one scenario (see above) !!!")
        return 0 if all_good else 1
    finally:
        stack.stop()
        if graph is not None:
            graph.shutdown()


def database_settle() -> None:
    """Let a scenario start on a settled database, not in the previous one's aftermath: a
    flat-out scenario leaves autovacuum, the GIN pending lists and a checkpoint to catch up
    (b stores over 40,000 messages in 10 s), and scenario c's latencies would measure that."""
    from django.db import connection

    t0 = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) conversations_message, conversations_conversation, profiles_clientprofile, "
            "webhooks_webhookevent, conversations_statusupdate"
        )
        try:
            cursor.execute("CHECKPOINT")  # superuser only; the VACUUM alone does most of it
        except Exception:
            pass
    print(f"  (database settled first: VACUUM ANALYZE and CHECKPOINT, {time.monotonic() - t0:.1f}s)")


def status_deliveries(builder: Builder, *, count: int) -> tuple[list[Delivery], dict[int, tuple[str, str]]]:
    """`count` outbound messages (already sent, in one conversation per customer), and for
    each a `delivered` then a `read` POST, the read 50 deliveries after its delivered."""
    from django.utils import timezone

    from conversations.models import Channel, Conversation, Message
    from profiles.models import ClientProfile

    channel = Channel.objects.get(phone_number_id=builder.phone_number_id)
    customers = []
    for n in range(min(count, 500)):
        wa_id = f"39{4_000_000_000 + n:010d}"
        profile, _ = ClientProfile.objects.get_or_create(wa_id=wa_id)
        conversation, _ = Conversation.objects.get_or_create(channel=channel, profile=profile)
        customers.append((wa_id, conversation.pk))
    now = timezone.now()
    prefix = builder.prefix("e")
    rows = []
    for n in range(count):
        wa_id, conversation_id = customers[n % len(customers)]
        rows.append(Message(conversation_id=conversation_id, direction="out", author="bot", type="text", text="Grazie!",
                            wamid=f"{prefix}{n:010d}", status="sent", status_rank=1, sent_at=now, handled_at=now))
    Message.objects.bulk_create(rows, batch_size=2000)
    deliveries: list[Delivery] = []
    status_of: dict[int, tuple[str, str]] = {}
    stamp = int(time.time())

    def add(n: int, status: str) -> None:
        wa_id = customers[n % len(customers)][0]
        delivery = builder.status_delivery(rows[n].wamid, status, stamp + (status == "read"), wa_id)
        status_of[id(delivery)] = (rows[n].wamid, status)
        deliveries.append(delivery)

    for n in range(count):
        add(n, "delivered")
        if n >= 50:
            add(n - 50, "read")
    for n in range(max(0, count - 50), count):
        add(n, "read")
    return deliveries, status_of


def report_statuses(result: Result, status_of: dict[int, tuple[str, str]], *, prefix: str, queued: int, events: int) -> bool:
    from django.db.models import Count

    from conversations.models import Message, StatusUpdate

    ok_requests = result.statuses.get(200, 0)
    ms = [x * 1000 for x in result.latencies]
    delivered = {status_of[id(d)][0] for d in result.sent}
    read = {status_of[id(d)][0] for d in result.sent if status_of[id(d)][1] == "read"}
    by_status = dict(Message.objects.filter(wamid__startswith=prefix).values_list("status").annotate(n=Count("id")))
    stored = StatusUpdate.objects.filter(wamid__startswith=prefix).count()
    unapplied = StatusUpdate.objects.filter(wamid__startswith=prefix, applied=False).count()
    print(f"  requests sent {result.sent_requests} in {result.elapsed:.2f}s; answers {dict(sorted(result.statuses.items()))}"
          + (f"; transport errors {result.errors}" if result.errors else ""))
    print(f"  accepted      {ok_requests / result.elapsed:8.1f} requests/s (statuses/s)")
    print(f"  ack latency   p50 {percentile(ms, 50):6.1f} ms   p90 {percentile(ms, 90):6.1f} ms   "
          f"p99 {percentile(ms, 99):6.1f} ms   max {max(ms, default=float('nan')):6.1f} ms")
    print(f"  counts        statuses sent {result.sent_requests}   stored {stored} (unapplied {unapplied})   webhook events {events}   "
          f"messages now read {by_status.get('read', 0)} (expected {len(read)}), "
          f"delivered or read {by_status.get('read', 0) + by_status.get('delivered', 0)} (expected {len(delivered)})   tasks queued {queued}")
    good = (stored == result.sent_requests == events == ok_requests and not unapplied and not result.errors and queued == 0
            and by_status.get("read", 0) == len(read) and by_status.get("read", 0) + by_status.get("delivered", 0) == len(delivered))
    print("  counts match" if good else "  !!! MISMATCH: statuses sent, stored, applied and answered do not agree !!!")
    return good


def drain(builder: Builder, *, timeout: float) -> bool:
    """With a worker: wait until every stored bench message has been handled."""
    from django.db.models import Q

    from conversations.models import Direction, Message

    inbound = Message.objects.filter(direction=Direction.INBOUND, wamid__startswith=builder.prefix(""))
    print("\nworker: waiting for every stored message to be handled")
    t0 = time.monotonic()
    left = inbound.filter(Q(handled_at__isnull=True)).count()
    while left and time.monotonic() - t0 < timeout:
        time.sleep(1)
        left = inbound.filter(handled_at__isnull=True).count()
    total = inbound.count()
    print(f"  handled {total - left} of {total} in {time.monotonic() - t0:.1f}s after the load stopped")
    if left:
        print(f"  !!! MISMATCH: {left} message(s) never handled !!!")
    return not left


if __name__ == "__main__":
    sys.exit(main())
