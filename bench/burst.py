#!/usr/bin/env python3
"""Bursts of valid WhatsApp traffic through the whole stack, end to end.

    .venv/bin/python bench/burst.py [--runs 1] [--texts 2000] [--customers 1000] [--connections 50]
                                    [--seconds 4.5] [--delay 2.0] [--workers 2] [--timeout 120]
                                    [--settle 10] [--linger 0]

What runs, all on loopback, on a database of its own (`wb_burst`, dropped and created
again) and Redis db 6 (flushed):
- the Procfile's `release` command, then its `web` (gunicorn, gthread), `--workers` times
  its `worker` (each `celery -A whatsbot worker` with a node name of its own) and its `beat`
  (the sweepers), with the product's defaults (REPLY_DEBOUNCE_SECONDS 3, ...);
- a fake OpenAI: `POST /v1/responses` answers after `--delay` seconds, spread by `--jitter`
  (the reply, or for a structured extraction, `text.format.type == "json_schema"`, a JSON
  object with every property of the schema null); `/v1/conversations` and
  `/v1/conversations/{id}/items` answer at once;
- a fake Graph API: `POST /{version}/{phone_number_id}/messages` records the recipient and
  the body of every reply and answers a unique wamid; read receipts (`"status": "read"`)
  answer `{"success": true}` and are not counted as replies.

The WhatsApp channel is the one the product makes from the environment (WHATSAPP_PHONE_ID,
WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN, WHATSAPP_API_BASE_URL pointing at the fake).

One burst: `--texts` signed webhook POSTs of one text each, text i from customer i mod
`--customers`, on `--connections` keep-alive connections, paced to take `--seconds`. Then it
waits until every customer has an answer (or `--timeout`), `--settle` seconds more for
answers that should not come, and reports the customers answered 0 times, exactly once and
more than once (and those who got one same reply twice: the fake numbers its replies), the
time from the burst's start to the last answer, and every error in the
web, worker and beat logs (ERROR/CRITICAL records and tracebacks), counted by exception
type. `--runs N` sends N bursts in a row to the same running stack, each from customers of
its own. `--linger S` keeps the stack up S seconds after the last run and counts the late
answers too (a reply sent again by the outbound sweeper comes after the five-minute lease:
`--linger 330`). Exit status 1 when any run had an error or a customer not answered
exactly once.

It depends only on what stays when the code inside changes: the environment, the Procfile,
`manage.py` commands, the webhook URL with Meta's JSON and signature, and the shapes of the
Graph and OpenAI HTTP APIs. Logs and the fake Graph API's record: var/bench-burst/.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from support import database_ensure, free_port  # bench/support.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "bench-burst"
SENDS_FILE = LOG_DIR / "graph-sends.jsonl"
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/wb_burst"
REDIS_URL = "redis://127.0.0.1:6379/6"
WEBHOOK_PATH = "/webhooks/whatsapp/"
PHONE_NUMBER_ID = "100200300400500"


# --- the fakes (each in a process of its own) ----------------------------------------------


async def _http_serve(port: int, respond, ready) -> None:
    """A minimal HTTP/1.1 server with keep-alive; `respond(method, path, body) -> (status,
    payload, delay)` is a plain function."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                raw = await reader.readexactly(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                status, payload, delay = respond(method, path, body)
                if delay:
                    await asyncio.sleep(delay)
                data = json.dumps(payload).encode()
                reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    ready.set()
    async with server:
        await server.serve_forever()


def _fake_signals() -> None:
    # Forked from the bench: not its handlers. Ctrl-C is the bench's; it stops the fakes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def fake_openai_serve(port: int, delay: float, jitter: float, ready) -> None:
    _fake_signals()
    counter = iter(range(1, 10**12))
    draw = random.Random(0)

    def respond(method: str, path: str, body: dict) -> tuple[int, dict, float]:
        path = path.split("?", 1)[0].rstrip("/")
        if path.endswith("/conversations"):
            return 200, {"id": f"conv_{next(counter)}", "object": "conversation", "created_at": int(time.time()), "metadata": {}}, 0
        if "/conversations/" in path and path.endswith("/items"):
            return 200, {"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False}, 0
        if not path.endswith("/responses"):
            return 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}}, 0
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            text = json.dumps({key: None for key in (fmt.get("schema") or {}).get("properties", {})})
        else:  # numbered: the same reply sent twice is told from a second answer
            text = f"Certo! Come posso aiutarti? (risposta {next(counter)})"
        latency = delay * (1 + jitter * (2 * draw.random() - 1)) if jitter else delay
        return 200, {
            "id": f"resp_{next(counter)}", "object": "response", "created_at": int(time.time()), "status": "completed",
            "model": body.get("model", "gpt-4.1"), "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": f"msg_{next(counter)}", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 900, "input_tokens_details": {"cached_tokens": 800}, "output_tokens": 20,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 920},
        }, latency  # fmt: skip

    asyncio.run(_http_serve(port, respond, ready))


def fake_graph_serve(port: int, phone_number_id: str, sends_file: str, ready) -> None:
    _fake_signals()
    record = open(sends_file, "a", buffering=1)  # noqa: SIM115 (open for the process's life; a line per reply, flushed at once)
    counter = iter(range(1, 10**12))
    route = re.compile(r"^/v[\d.]+/(?P<phone>[^/]+)/messages$")

    def respond(method: str, path: str, body: dict) -> tuple[int, dict, float]:
        match = route.match(path.split("?", 1)[0])
        if method != "POST" or not match or match["phone"] != phone_number_id:
            record.write(json.dumps({"t": time.time(), "unexpected": f"{method} {path}"}) + "\n")
            return 404, {"error": {"message": "Unknown path", "type": "GraphMethodException", "code": 100}}, 0
        if body.get("status") == "read":
            return 200, {"success": True}, 0
        wamid = f"wamid.burst.out.{next(counter)}.{secrets.token_hex(6)}"
        to = body.get("to") or body.get("recipient")  # a phone number, or a BSUID for a customer without one
        record.write(json.dumps({"t": time.time(), "to": to, "wamid": wamid, "body": body}) + "\n")
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                     "messages": [{"id": wamid}]}, 0  # fmt: skip

    asyncio.run(_http_serve(port, respond, ready))


# --- the stack ------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not line.startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def database_fresh(url: str) -> None:
    """The bench's database dropped and created again (only one of this bench's)."""
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    assert name.startswith("wb_burst"), name  # this bench's databases only
    database_ensure(url, fresh=True)


def redis_flush(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    db = int(parts.path.lstrip("/") or 0)
    assert db in (6, 7), db  # this bench's Redis databases only
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as s:
        s.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(str(db))}\r\n{db}\r\n*1\r\n$7\r\nFLUSHDB\r\n".encode())
        answer = b""
        while answer.count(b"\r\n") < 2:
            answer += s.recv(100)
        assert answer == b"+OK\r\n+OK\r\n", answer


class Stack:
    """The processes the bench starts; each leads a process group of its own, which is
    what gets the signals (gunicorn's workers, a worker's children)."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.fakes: list[multiprocessing.Process] = []
        self.logs: dict[str, Path] = {}

    def start(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen:
        path = LOG_DIR / f"{name}.log"
        with open(path, "wb") as log:  # the child has its own copy of the descriptor
            process = subprocess.Popen(
                ["/bin/sh", "-c", "exec " + command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.processes.append((name, process))
        self.logs[name] = path
        return process

    def fake(self, target, *args) -> None:
        ready = multiprocessing.Event()
        process = multiprocessing.Process(target=target, args=(*args, ready), daemon=True)
        process.start()
        self.fakes.append(process)
        if not ready.wait(10):
            raise SystemExit(f"{target.__name__} did not start")

    def dead(self) -> list[str]:
        return [name for name, p in self.processes if p.poll() is not None]

    def stop(self) -> None:
        # Web first (no new texts), then beat, then the workers (a warm shutdown drains
        # their event loops: up to WORKER_DRAIN_SECONDS).
        order = sorted(self.processes, key=lambda item: (not item[0].startswith("web"), not item[0].startswith("beat")))
        for _name, process in order:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 40
        for name, process in order:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time: killed", flush=True)
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left
            except ProcessLookupError:
                pass
        for process in self.fakes:
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()


def stack_environment(*, web_port: int, openai_port: int, graph_port: int, app_secret: str, db_pool: int) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "whatsbot.settings",
        "PORT": str(web_port),
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-burst-" + secrets.token_urlsafe(40),
        # As in production, but on plain HTTP on loopback.
        "DEBUG": "false",
        "WHATSBOT_TESTING": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "sk-bench-burst-0000000000000000",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{openai_port}/v1",
        "WHATSAPP_PHONE_ID": PHONE_NUMBER_ID,
        "WHATSAPP_APP_SECRET": app_secret,
        "WHATSAPP_ACCESS_TOKEN": "EAAbench" + secrets.token_hex(16),
        "WHATSAPP_VERIFY_TOKEN": "bench-burst-verify",
        "WHATSAPP_DISPLAY_NUMBER": "+39 02 0000000",
        "WHATSAPP_ACCOUNT_ID": "900000000000001",
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}",
        "DATABASE_POOL_MAX_SIZE": str(db_pool),
    }
    # The product's defaults, not a developer's shell.
    for name in ("REPLY_DEBOUNCE_SECONDS", "LOG_LEVEL", "CELERY_TASK_ALWAYS_EAGER", "OPENAI_PROMPT_ID"):
        env.pop(name, None)
    return env


def wait_for(what: str, check, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if stack.dead():
            raise SystemExit(f"{', '.join(stack.dead())} exited while waiting for {what}: see {LOG_DIR}")
        time.sleep(0.25)
    raise SystemExit(f"timed out waiting for {what}: see {LOG_DIR}")


def web_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# --- one burst ------------------------------------------------------------------------------


def wa_id_for(run: int, customer: int) -> str:
    return f"393{run:03d}{customer:06d}"


def signed_request(*, host: str, run: int, index: int, wa_id: str, app_secret: str, stamp: str) -> bytes:
    """One Meta delivery with one text, as the HTTP request that carries it."""
    body = json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "900000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "390200000000", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Cliente {wa_id[-6:]}"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": f"wamid.burst.{stamp}.{run}.{index}", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": f"Buongiorno, vorrei sapere dell'ordine {run}-{index}."}}],
        }}]}],
    }, separators=(",", ":")).encode()  # fmt: skip
    signature = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: facebookexternalua\r\nAccept: */*\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Hub-Signature-256: {signature}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Posted:
    statuses: collections.Counter = field(default_factory=collections.Counter)
    reconnects: int = 0
    failures: int = 0  # no answer at all, after a retry on a new connection
    first_at: float = 0.0
    last_at: float = 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def burst_post(*, port: int, requests: list[bytes], connections: int, seconds: float) -> Posted:
    """Send `requests` on `connections` keep-alive connections, request k at k * seconds /
    len(requests) after the start (or as soon as its connection is free, if later)."""
    posted = Posted()
    start = time.monotonic() + 0.2
    posted.first_at = time.time() + 0.2
    step = seconds / max(1, len(requests))

    async def connection(first: int) -> None:
        reader = writer = None
        for k in range(first, len(requests), connections):
            delay = start + k * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for attempt in (1, 2):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(requests[k])
                    await writer.drain()
                    status, close = await _read_response(reader)
                    posted.statuses[status] += 1
                    if close:
                        writer.close()
                        reader = writer = None
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                    # The server closed a kept-alive connection: once more on a new one (a
                    # delivery that did arrive is a duplicate, which the product ignores, as
                    # it must when Meta retries).
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if attempt == 1:
                        posted.reconnects += 1
                    else:
                        posted.failures += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection(j) for j in range(min(connections, len(requests)))))
    posted.last_at = time.time()
    return posted


class Sends:
    """The fake Graph API's record, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.file = open(path)  # noqa: SIM115 (read as it grows, for the bench's life)
        self.by_customer: dict[str, list[float]] = collections.defaultdict(list)
        self.texts: dict[str, list[str]] = collections.defaultdict(list)
        self.unexpected: list[str] = []
        self._partial = ""

    def read(self) -> None:
        data = self._partial + self.file.read()
        lines = data.split("\n")
        self._partial = lines.pop()
        for line in lines:
            if not line:
                continue
            item = json.loads(line)
            if "unexpected" in item:
                self.unexpected.append(item["unexpected"])
            else:
                self.by_customer[item["to"]].append(item["t"])
                self.texts[item["to"]].append(((item.get("body") or {}).get("text") or {}).get("body", ""))


# --- the logs -------------------------------------------------------------------------------

# A record starts with a timestamp: the settings' "2025-01-01 10:00:00,000 ERROR name ...",
# Celery's "[2025-01-01 10:00:00,000: ERROR/MainProcess] ...", gunicorn's
# "[2025-01-01 10:00:00 +0000] [123] [ERROR] ...". The level is the token after it.
_RECORD = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
_LEVEL = re.compile(r"^\d{4}-\S+ \S+ (?:ERROR|CRITICAL) |^\[[^\]]*: (?:ERROR|CRITICAL)/|^\[[^\]]*\] \[\d+\] \[(?:ERROR|CRITICAL)\]")
_WARNING = re.compile(r"^\d{4}-\S+ \S+ WARNING |^\[[^\]]*: WARNING/|^\[[^\]]*\] \[\d+\] \[WARNING\]")
_FRAME = re.compile(r'^\s+File "(?P<path>[^"]+)", line \d+, in (?P<function>\S+)')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)(?::\s|$)")


@dataclass
class LogErrors:
    by_type: collections.Counter = field(default_factory=collections.Counter)
    # (type, the innermost function of the project's own code in the traceback)
    where: collections.Counter = field(default_factory=collections.Counter)
    examples: dict[str, str] = field(default_factory=dict)
    warnings: int = 0

    @property
    def count(self) -> int:
        return sum(self.by_type.values())

    def add(self, other: LogErrors) -> None:
        self.by_type.update(other.by_type)
        self.where.update(other.where)
        self.warnings += other.warnings
        for key, value in other.examples.items():
            self.examples.setdefault(key, value)


def log_errors(text: str, source: str) -> LogErrors:
    """Every ERROR/CRITICAL record, and every traceback whatever its record's level, keyed
    by the exception it ends with (and the one it came from, when chained)."""
    found = LogErrors()
    records: list[list[str]] = []
    for line in text.splitlines():
        if _RECORD.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    for lines in records:
        head = lines[0]
        error = bool(_LEVEL.match(head))
        chain: list[str] = []
        in_traceback = False
        own = ""  # the last frame of the project's code (not a library's, not Python's)
        for i, line in enumerate(lines):
            if line.startswith("Traceback (most recent call last)"):
                in_traceback = True
                error = True
                continue
            frame = _FRAME.match(line)
            if frame and frame["path"].startswith(str(ROOT)) and "/site-packages/" not in frame["path"]:
                own = frame["function"]
            if in_traceback and not line.startswith((" ", "\t")) and line.strip():
                match = _EXCEPTION.match(line)
                # An exception line follows the frames (indented lines); the next chained
                # traceback, if any, starts again with "Traceback".
                if match and i > 0 and lines[i - 1].startswith((" ", "\t")):
                    chain.append(match["type"])
                    in_traceback = False
        if not error:
            if _WARNING.match(head):
                found.warnings += 1
            continue
        if chain:
            key = chain[-1] if len(set(chain)) == 1 else f"{chain[-1]} (from {chain[0]})"
        else:
            message = re.sub(r"^.*?(?:ERROR|CRITICAL)\S*\s*", "", head, count=1)
            key = "no traceback: " + re.sub(r"\d+", "N", message)[:90]
        found.by_type[key] += 1
        found.where[(key, own or "-")] += 1
        found.examples.setdefault(key, f"{source}: {head[:300]}")
    return found


class Logs:
    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.offsets = {name: 0 for name in paths}

    def mark(self) -> None:
        self.offsets = {name: path.stat().st_size for name, path in self.paths.items()}

    def errors_since_mark(self) -> LogErrors:
        total = LogErrors()
        for name, path in self.paths.items():
            with open(path, "rb") as f:
                f.seek(self.offsets[name])
                total.add(log_errors(f.read().decode("utf-8", "replace"), name))
        return total


# --- main -----------------------------------------------------------------------------------


@dataclass
class RunResult:
    run: int
    customers: list[str]
    started: float
    posted: Posted
    errors: LogErrors = field(default_factory=LogErrors)

    def answers(self, sends: Sends) -> collections.Counter:
        return collections.Counter(min(len(sends.by_customer.get(c, ())), 2) for c in self.customers)

    def resent(self, sends: Sends) -> int:
        """Customers who got one same reply more than once (not a second answer)."""
        return sum(1 for c in self.customers if len(set(sends.texts.get(c, ()))) < len(sends.texts.get(c, ())))

    def last_answer(self, sends: Sends) -> float | None:
        times = [t for c in self.customers for t in sends.by_customer.get(c, ())]
        return max(times) - self.started if times else None

    def ok(self, sends: Sends) -> bool:
        counts = self.answers(sends)
        return counts[1] == len(self.customers) and not self.errors.count

    def line(self, sends: Sends) -> str:
        counts = self.answers(sends)
        last = self.last_answer(sends)
        statuses = ", ".join(f"{n}x{code}" for code, n in sorted(self.posted.statuses.items()))
        errors = ", ".join(f"{n} {kind}" for kind, n in self.errors.by_type.most_common()) or "none"
        return (
            f"run {self.run}: posted in {self.posted.last_at - self.posted.first_at:.1f}s ({statuses}"
            f"{f', {self.posted.reconnects} reconnects' if self.posted.reconnects else ''}"
            f"{f', {self.posted.failures} NOT DELIVERED' if self.posted.failures else ''}); "
            f"customers answered 0x {counts[0]}, 1x {counts[1]}, 2+x {counts[2]} (the same reply twice: {self.resent(sends)}); "
            f"last answer {f'{last:.1f}s' if last is not None else '-'} after the start; "
            f"log errors: {errors}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="bursts in a row, on the same running stack")
    parser.add_argument("--texts", type=int, default=2000, help="webhook POSTs per burst, one text each")
    parser.add_argument("--customers", type=int, default=1000, help="customers per burst (text i is from customer i mod this)")
    parser.add_argument("--connections", type=int, default=50, help="keep-alive HTTP connections")
    parser.add_argument("--seconds", type=float, default=4.5, help="the burst's length")
    parser.add_argument("--delay", type=float, default=2.0, help="the fake OpenAI's latency for /v1/responses")
    parser.add_argument(
        "--jitter", type=float, default=0.0,
        help="spread of that latency: uniform in delay x (1 +- jitter), e.g. 0.5 for 1-3 s (0: always the delay)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (the Procfile's worker: command)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every customer's answer")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after the last first answer (for extra ones)")
    parser.add_argument("--linger", type=float, default=0.0, help="after the last run, keep watching this long (330: the sweeper's re-sends)")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    parser.add_argument(
        "--db-pool", type=int, default=10,
        help="DATABASE_POOL_MAX_SIZE of every process (0: the product's default, a connection per thread, which "
        "with gunicorn's 32 threads and two workers' kept threads can pass a max_connections of 100)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.customers > 999_999 or args.runs > 999:
        parser.error("at most 999,999 customers and 999 runs")

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    SENDS_FILE.write_text("")
    stack = Stack()
    interrupted = False

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    results: list[RunResult] = []
    late = LogErrors()  # found while lingering
    sends = None
    try:
        web_port, openai_port, graph_port = free_port(), free_port(), free_port()
        app_secret = secrets.token_hex(16)
        env = stack_environment(web_port=web_port, openai_port=openai_port, graph_port=graph_port, app_secret=app_secret, db_pool=args.db_pool)
        commands = procfile()
        stack.fake(fake_openai_serve, openai_port, args.delay, args.jitter)
        stack.fake(fake_graph_serve, graph_port, PHONE_NUMBER_ID, str(SENDS_FILE))
        sends = Sends(SENDS_FILE)

        database_fresh(DATABASE_URL)
        redis_flush(REDIS_URL)
        release = LOG_DIR / "release.log"
        with open(release, "wb") as log:
            done = subprocess.run(["/bin/sh", "-c", commands["release"]], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            raise SystemExit(f"the Procfile's release command failed: see {release}")

        # On loopback only, whatever address the Procfile binds.
        stack.start("web", commands["web"].replace("0.0.0.0:", "127.0.0.1:"), env)
        for i in range(1, args.workers + 1):
            stack.start(f"worker{i}", f"{commands['worker']} -n burst{i}@%h", env)
        schedule = LOG_DIR / "celerybeat-schedule"
        stack.start("beat", f"{commands['beat']} --schedule {shlex.quote(str(schedule))}", env)
        wait_for("the web process", lambda: web_ready(web_port), 60, stack)
        for i in range(1, args.workers + 1):
            path = stack.logs[f"worker{i}"]
            wait_for(f"worker{i}", lambda path=path: b" ready." in path.read_bytes(), 60, stack)
        logs = Logs(stack.logs)
        print(
            f"stack up: gunicorn on 127.0.0.1:{web_port}, {args.workers} worker(s), beat; "
            f"fake OpenAI {args.delay:g}s{f' +-{args.jitter:.0%}' if args.jitter else ''}; "
            f"logs in {LOG_DIR.relative_to(ROOT)}/",
            flush=True,
        )

        stamp = secrets.token_hex(3)
        for run in range(1, args.runs + 1):
            customers = [wa_id_for(run, c) for c in range(args.customers)]
            requests = [
                signed_request(host=f"127.0.0.1:{web_port}", run=run, index=i, wa_id=customers[i % args.customers],
                               app_secret=app_secret, stamp=stamp)
                for i in range(args.texts)
            ]  # fmt: skip
            logs.mark()
            started = time.time()
            posted = asyncio.run(burst_post(port=web_port, requests=requests, connections=args.connections, seconds=args.seconds))
            result = RunResult(run=run, customers=customers, started=posted.first_at, posted=posted)
            deadline = started + args.timeout
            while time.time() < deadline:
                sends.read()
                if all(c in sends.by_customer for c in customers):
                    break
                if stack.dead():
                    raise SystemExit(f"{', '.join(stack.dead())} exited: see {LOG_DIR}")
                time.sleep(0.2)
            time.sleep(args.settle)
            sends.read()
            result.errors = logs.errors_since_mark()
            results.append(result)
            print(result.line(sends), flush=True)
            if run < args.runs:
                time.sleep(args.pause)

        if args.linger > 0:
            print(f"lingering {args.linger:g}s for late answers (the sweepers)...", flush=True)
            logs.mark()
            end = time.time() + args.linger
            while time.time() < end:
                time.sleep(min(5.0, max(0.0, end - time.time())))
                if stack.dead():
                    raise SystemExit(f"{', '.join(stack.dead())} exited: see {LOG_DIR}")
            sends.read()
            late = logs.errors_since_mark()
            errors = ", ".join(f"{n} {kind}" for kind, n in late.by_type.most_common()) or "none"
            print(f"after lingering: log errors while lingering: {errors}; the runs again, with the late answers:", flush=True)
            for result in results:
                print("  " + result.line(sends), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: stopping the stack", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
        stack.stop()

    if sends is None or not results:
        return 130 if interrupted else 1
    total_errors = LogErrors()
    total_errors.add(late)
    counts = collections.Counter()
    for result in results:
        total_errors.add(result.errors)
        counts.update(result.answers(sends))
    customers = sum(len(r.customers) for r in results)
    resent = sum(r.resent(sends) for r in results)
    failed = [r.run for r in results if not r.ok(sends)]
    print(
        f"total: {len(results)} run(s), {customers} customers: answered 0x {counts[0]}, 1x {counts[1]}, 2+x {counts[2]} "
        f"(the same reply twice: {resent}); "
        f"log errors {total_errors.count}, warnings {total_errors.warnings}; runs not clean: {failed or 'none'}"
    )
    for kind, n in total_errors.by_type.most_common():
        print(f"  {n:6d}  {kind}\n          e.g. {total_errors.examples[kind][:250]}")
        for (where_kind, function), m in total_errors.where.most_common():
            if where_kind == kind:
                print(f"          {m:6d} in {function}")
    if sends.unexpected:
        print(f"  the fake Graph API was called {len(sends.unexpected)} time(s) off its route, e.g. {sends.unexpected[0]}")
    if interrupted:
        return 130
    return 1 if failed or late.count or sends.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
