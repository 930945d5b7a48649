#!/usr/bin/env python3
"""Server time of the staff console on a big database.

Seeds PostgreSQL with 100,000 conversations (one customer each) and 2,000,000 messages
(`INSERT … SELECT generate_series`, secondary indexes dropped during the load and rebuilt
after, then ANALYZE), in a dedicated database it creates and migrates
(`BENCH_DATABASE_URL`, default `whatsbot_bench_console`; never your working database).
A second run reuses the data when the counts match (`--reseed` forces a new load).

Then it measures, in-process with Django's test Client and a logged-in staff member (so the
figures are the server's own time: URL routing, middleware, session, queries, templates; no
network), each console endpoint: the list page, a search (names, numbers, emails, companies,
message text), a thread page, and the no-change polls. For each it prints p50 / p95 / max
in milliseconds, the number of SQL queries and the time spent in them, and the target.

    make bench-console
    .venv/bin/python bench/console_load.py --requests 100
    .venv/bin/python bench/console_load.py --explain        # EXPLAIN ANALYZE of the slowest query per endpoint

DEBUG is off (as in production), the cache and broker are the embedded file ones (nothing
is queued by these GET requests).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from support import database_ensure  # bench/support.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/whatsbot_bench_console"
MESSAGES_PER_CONVERSATION = 20
STAFF = 12

TARGETS_MS = {"list": 100, "list (htmx partial)": 100, "list page 2": 100, "search": 300, "thread": 100, "list poll (no change)": 10, "thread poll (no change)": 10}

FIRST_NAMES = "Marco Giulia Luca Francesca Alessandro Chiara Matteo Sara Lorenzo Martina Andrea Elena Davide Valentina Simone Anna Federico Laura Paolo Silvia Roberto Giorgia Stefano Alice Giuseppe Ilaria Antonio Elisa Riccardo Marta".split()
LAST_NAMES = "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti De-Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani Rinaldi Caruso Ferrara Galli Martini Leone".split()
COMPANIES = "Acme Edilnord Ortofrutta-Sud Meccanica-Veneta Tessuti-Como Vini-del-Colle Arredo-Design Logistica-Adriatica Farmacia-Centrale Studio-Legale-Neri Autofficina-Riva Panificio-Dora Ferramenta-Po Hotel-Lago Caseificio-Alpi".split()
PHRASES = [
    "Buongiorno, vorrei sapere dove si trova il mio ordine",
    "Il pacco non è ancora arrivato, potete verificare?",
    "Grazie mille per la risposta",
    "Posso cambiare l'indirizzo di consegna?",
    "Avete disponibile la taglia media?",
    "Vorrei parlare con un operatore",
    "La fattura non riporta la partita IVA corretta",
    "Quando riaprite dopo le ferie?",
    "Il prodotto è arrivato danneggiato, allego una foto",
    "Perfetto, attendo la conferma",
    "Certo, le confermo che la spedizione è partita ieri",
    "Mi può indicare il numero d'ordine?",
    "Abbiamo registrato la sua richiesta di reso",
    "Il corriere passerà domani mattina",
    "Può scriverci la sua email per la fattura?",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=2_000_000, help="total; spread evenly over the conversations")
    p.add_argument("--requests", type=int, default=200, help="timed requests per endpoint (after a warm-up)")
    p.add_argument("--reseed", action="store_true", help="wipe and seed again even if the counts match")
    p.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each endpoint's slowest query")
    p.add_argument("--admin", action="store_true", help="also time the Django admin list pages")
    return p.parse_args()


# --- set-up ------------------------------------------------------------------------------------




def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "false"
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + os.urandom(24).hex())
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ["AXES_ENABLED"] = "false"
    os.environ["REDIS_URL"] = ""
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    # Production serves hashed names from a manifest built by collectstatic; the bench does not
    # build one (it would write into var/), and a plain URL costs the same dictionary lookup.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

    call_command("migrate", verbosity=0, interactive=False)

    from django.db.backends.signals import connection_created

    def _limit(sender, connection, **kwargs):
        # A pathological plan must not hang the bench: it shows up as an error instead.
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")

    connection_created.connect(_limit, weak=False)
    from django.db import connection

    connection.close()  # the next query opens a connection with the limit set


# --- seeding -----------------------------------------------------------------------------------


def _sql_array(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(array_sql: str, n: int, seed_sql: str) -> str:
    """A deterministic pick from an SQL array, varied by `seed_sql` (an integer expression)."""
    return f"({array_sql})[1 + (abs(hashint4(({seed_sql})::int)) % {n})]"


def insert_select(model, exprs: dict[str, str], source: str) -> int:
    """INSERT INTO <model table> (every column) SELECT <expr or the field's default> FROM <source>.

    Columns not in `exprs` take NULL when nullable, else the model field's default (so a
    field added by a later migration does not break the seeding)."""
    import json as _json

    from django.db import connection

    qn = connection.ops.quote_name
    columns, values, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(qn(f.column))
        if f.column in exprs:
            values.append(exprs[f.column].replace("%", "%%"))  # modulo, not a placeholder
        elif f.null:
            values.append("NULL")
        else:
            default = f.get_default()
            if f.get_internal_type() == "JSONField":
                values.append("%s::jsonb")
                params.append(_json.dumps(default))
            else:
                values.append("%s")
                params.append(f.get_db_prep_save(default, connection))
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def seed(*, conversations: int, messages: int) -> None:
    from django.db import transaction

    # One transaction: an interrupted load leaves the old data and every index in place.
    with transaction.atomic():
        _seed(conversations=conversations, messages=messages)


def _seed(*, conversations: int, messages: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from conversations.models import Channel, Conversation, Message
    from profiles.models import ClientProfile

    per = max(1, messages // conversations)
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE conversations_message, conversations_conversationnote, conversations_conversation, "
            "profiles_profilefieldchange, profiles_clientprofile, conversations_statusupdate, webhooks_webhookevent "
            "RESTART IDENTITY CASCADE"
        )
        cursor.execute("SET statement_timeout = 0")  # the load itself takes minutes
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET synchronous_commit = off")
    channel, _ = Channel.objects.get_or_create(
        phone_number_id="bench-number", defaults={"name": "Bench", "app_secret": "bench-secret", "display_phone_number": "+39 02 000000"}
    )
    User = get_user_model()
    staff_ids = []
    for n in range(STAFF):
        user, _ = User.objects.get_or_create(username=f"bench-staff-{n}", defaults={"is_staff": True, "first_name": FIRST_NAMES[n]})
        staff_ids.append(user.pk)

    # Secondary indexes slow a bulk load down (the trigram ones by far): drop, load, rebuild.
    dropped = _indexes_drop([ClientProfile._meta.db_table, Conversation._meta.db_table, Message._meta.db_table])

    first, last, comp = _sql_array(FIRST_NAMES), _sql_array(LAST_NAMES), _sql_array(COMPANIES)
    nf, nl, nc = len(FIRST_NAMES), len(LAST_NAMES), len(COMPANIES)
    # Conversation i's last message is i/N of the way through the last 90 days, plus jitter.
    last_at = f"(now() - interval '90 days' * (1 - g::float / {conversations}) - interval '1 second' * ((g * 7919) % 3600))"
    insert_select(
        ClientProfile,
        {
            # Every customer has a BSUID; one in ten uses a username and hides its number.
            "key": "'IT.' || lpad(g::text, 20, '0')",
            "user_id": "'IT.' || lpad(g::text, 20, '0')",
            "wa_id": "CASE WHEN g % 10 = 0 THEN '' ELSE '39' || lpad(g::text, 10, '0') END",
            "username": f"CASE WHEN g % 10 = 0 THEN '@' || lower({_pick(first, nf, 'g * 31')}) || '.' || g ELSE '' END",
            "profile_name": f"{_pick(first, nf, 'g * 31')} || ' ' || left({_pick(last, nl, 'g * 17')}, 1) || '.'",
            # Two thirds have given their names, half a company, 40% an email.
            "first_name": f"CASE WHEN g % 3 <> 0 THEN {_pick(first, nf, 'g * 31')} ELSE '' END",
            "last_name": f"CASE WHEN g % 3 <> 0 THEN replace({_pick(last, nl, 'g * 17')}, '-', ' ') ELSE '' END",
            "company": f"CASE WHEN g % 2 = 0 THEN replace({_pick(comp, nc, 'g * 13')}, '-', ' ') || ' ' || (g % 500) ELSE '' END",
            "email": f"CASE WHEN g % 5 < 2 THEN lower({_pick(first, nf, 'g * 31')}) || '.' || g || '@example.com' ELSE '' END",
            "order_numbers": "CASE WHEN g % 4 = 0 THEN jsonb_build_array('ORD-' || (100000 + g)) ELSE '[]'::jsonb END",
            "first_contact_at": f"{last_at} - interval '30 days'",
            "last_contact_at": last_at,
            "created_at": f"{last_at} - interval '30 days'",
            "updated_at": last_at,
        },
        f"generate_series(1, {conversations}) AS g",
    )
    print(f"  {conversations:,} profiles in {time.perf_counter() - t0:.1f}s", flush=True)

    staff_array = "ARRAY[" + ",".join(map(str, staff_ids)) + "]::bigint[]"
    insert_select(
        Conversation,
        {
            "channel_id": str(channel.pk),
            "profile_id": "g",
            # 15% with a human (two thirds of them assigned), 30% resolved.
            "owner": "CASE WHEN g % 20 < 3 THEN 'human' ELSE 'bot' END",
            "status": "CASE WHEN g % 10 < 3 THEN 'resolved' ELSE 'open' END",
            "assigned_to_id": f"CASE WHEN g % 20 < 2 THEN ({staff_array})[1 + g % {STAFF}] END",
            "handoff_reason": "CASE WHEN g % 20 < 3 THEN 'The customer asked for a person.' ELSE '' END",
            "last_inbound_at": f"{last_at} - interval '5 minutes'",
            "last_message_at": last_at,
            "last_message_preview": _pick(_sql_array(PHRASES), len(PHRASES), "g * 7"),
            "unread_count": "CASE WHEN g % 7 = 0 THEN g % 4 ELSE 0 END",
            "revision": str(per),
            "changed_at": last_at,
            "created_at": f"{last_at} - interval '30 days'",
        },
        f"generate_series(1, {conversations}) AS g",
    )
    print(f"  {conversations:,} conversations in {time.perf_counter() - t0:.1f}s", flush=True)

    # Message g belongs to conversation c = (g-1)/per + 1, position k = (g-1) % per; customer
    # and bot alternate, five minutes apart, ending at the conversation's last message time.
    c = f"((g - 1) / {per} + 1)"
    k = f"((g - 1) % {per})"
    at = f"(now() - interval '90 days' * (1 - {c}::float / {conversations}) - interval '1 second' * (({c} * 7919) % 3600) - interval '5 minutes' * ({per} - 1 - {k}))"
    phrases = _sql_array(PHRASES)
    insert_select(
        Message,
        {
            "conversation_id": c,
            "direction": f"CASE WHEN {k} % 2 = 0 THEN 'in' ELSE 'out' END",
            "author": f"CASE WHEN {k} % 2 = 0 THEN 'customer' WHEN g % 9 = 0 THEN 'staff' ELSE 'bot' END",
            "type": "'text'",
            "text": f"{_pick(phrases, len(PHRASES), 'g * 7 + ' + k)} || CASE WHEN g % 11 = 0 THEN ' ORD-' || (100000 + {c}) ELSE '' END",
            "wamid": "'wamid.bench.' || g",
            "provider_timestamp": f"CASE WHEN {k} % 2 = 0 THEN {at} END",
            "status": f"CASE WHEN {k} % 2 = 0 THEN 'received' ELSE 'read' END",
            "status_rank": f"CASE WHEN {k} % 2 = 0 THEN 0 ELSE 3 END",
            "sent_at": f"CASE WHEN {k} % 2 = 1 THEN {at} END",
            "delivered_at": f"CASE WHEN {k} % 2 = 1 THEN {at} + interval '2 seconds' END",
            "read_at": f"CASE WHEN {k} % 2 = 1 THEN {at} + interval '1 minute' END",
            "handled_at": at,
            "created_at": at,
        },
        f"generate_series(1, {conversations * per}) AS g",
    )
    print(f"  {conversations * per:,} messages in {time.perf_counter() - t0:.1f}s", flush=True)

    _indexes_create(dropped)
    print(f"  indexes rebuilt in {time.perf_counter() - t0:.1f}s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    print(f"seeded in {time.perf_counter() - t0:.1f}s", flush=True)


def _indexes_drop(tables: list[str]) -> list[str]:
    """Drop the indexes that back no constraint; return their definitions."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = ANY(%s) AND i.schemaname = current_schema()
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            """,
            [tables],
        )
        rows = cursor.fetchall()
        for name, _ in rows:
            cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def _indexes_create(definitions: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # Django's foreign keys are checked at commit; an index cannot be built on a table with
        # checks pending, so run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        for definition in definitions:
            cursor.execute(definition)


def counts() -> tuple[int, int]:
    from conversations.models import Conversation, Message

    # Exact counts of big tables are slow; the planner's estimate tells "seeded or not".
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s)",
            [[Conversation._meta.db_table, Message._meta.db_table]],
        )
        found = dict(cursor.fetchall())
    return max(0, found.get(Conversation._meta.db_table, 0)), max(0, found.get(Message._meta.db_table, 0))


# --- measuring ---------------------------------------------------------------------------------


STATEMENT_TIMEOUT_MS = 15_000


@dataclass
class Sample:
    ms: float
    queries: int
    sql_ms: float
    slowest_sql: tuple[float, str, tuple] = (0.0, "", ())
    error: str = ""
    # This process's CPU time: the Python side only (PostgreSQL runs in its own processes), and
    # much less sensitive than wall time to other programs competing for the cores.
    cpu_ms: float = 0.0


@dataclass
class Endpoint:
    name: str
    urls: list[str] | object  # or a callable returning them, called just before the run
    headers: dict = field(default_factory=dict)
    expect: tuple[int, ...] = (200,)
    samples: list[Sample] = field(default_factory=list)


class QueryTimer:
    """Counts the queries a request runs and the time spent in them."""

    def __init__(self):
        self.count, self.seconds, self.slowest = 0, 0.0, (0.0, "", ())

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - start
            self.count += 1
            self.seconds += took
            if took > self.slowest[0]:
                self.slowest = (took, sql, tuple(params or ()))


def run(endpoint: Endpoint, client, requests: int, warmup: int = 5) -> None:
    from django.db import connection

    if callable(endpoint.urls):
        # Built now: earlier endpoints (a thread marked read) change what "no change" means.
        endpoint.urls = endpoint.urls()
    for url in endpoint.urls[:warmup]:
        client.get(url, **endpoint.headers)
    for i in range(requests):
        url = endpoint.urls[i % len(endpoint.urls)]
        timer = QueryTimer()
        error = ""
        with connection.execute_wrapper(timer):
            cpu_start = time.process_time()
            start = time.perf_counter()
            try:
                response = client.get(url, **endpoint.headers)
            except Exception as exc:  # e.g. the statement timeout: count it, keep measuring
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]} ({url})"
            took = time.perf_counter() - start
            cpu = (time.process_time() - cpu_start) * 1000
        if error:
            print(f"  ! {endpoint.name}: {error} after {took * 1000:.0f} ms", flush=True)
            endpoint.samples.append(Sample(took * 1000, timer.count, timer.seconds * 1000, (timer.slowest[0] * 1000, timer.slowest[1], timer.slowest[2]), error))
            continue
        if response.status_code not in endpoint.expect:
            raise SystemExit(f"{endpoint.name}: {url} answered {response.status_code}, expected {endpoint.expect}")
        endpoint.samples.append(Sample(took * 1000, timer.count, timer.seconds * 1000, (timer.slowest[0] * 1000, timer.slowest[1], timer.slowest[2]), cpu_ms=cpu))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def endpoints(rng: random.Random) -> list[Endpoint]:
    from django.db.models import Max
    from django.urls import reverse
    from django.utils import timezone

    from conversations.models import Conversation, Message
    from profiles.models import ClientProfile

    last_id = Conversation.objects.order_by("-id").values_list("id", flat=True).first()
    ids = [rng.randint(1, last_id) for _ in range(60)]
    newest = dict(
        Message.objects.filter(conversation_id__in=ids).order_by().values("conversation_id").annotate(m=Max("id")).values_list("conversation_id", "m")
    )
    profiles = list(ClientProfile.objects.filter(pk__in=ids))
    terms = []
    for p in profiles[:40]:
        terms += [p.wa_id[-7:] or p.username, p.last_name or p.profile_name.split()[0], p.email or p.company or p.profile_name]
    terms += ["Marco Rossi", "Acme", "ORD-1000", "danneggiato", "partita IVA", "fattura", "giulia.1"]
    terms = [t for t in terms if t]
    rng.shuffle(terms)

    list_url = reverse("console:inbox")
    htmx = {"HTTP_HX_REQUEST": "true"}
    found: list[Endpoint] = [
        Endpoint("list", [list_url]),
        Endpoint("search", [f"{list_url}?{urllib.parse.urlencode({'q': t})}" for t in terms]),
        Endpoint("thread", [reverse("console:thread", args=[pk]) for pk in ids]),
    ]
    # The console's own URLs for the partial list, the list poll and the thread poll.
    names = {p.name for p in _console_patterns()}
    if "thread_poll" in names:

        def thread_polls() -> list[str]:
            revisions = dict(Conversation.objects.filter(pk__in=ids).values_list("pk", "revision"))
            return [
                f"{reverse('console:thread_poll', args=[pk])}?rev={revisions[pk]}&after={newest.get(pk, 0)}&win=0"
                for pk in ids if pk in revisions
            ]  # fmt: skip

        found.append(Endpoint("thread poll (no change)", thread_polls, htmx, expect=(204,)))
    if "list_poll" in names:

        def list_polls() -> list[str]:
            since = Conversation.objects.order_by("-changed_at").values_list("changed_at", flat=True).first() or timezone.now()
            return [f"{reverse('console:list_poll')}?{urllib.parse.urlencode({'since': since.isoformat()})}"]

        found.append(Endpoint("list poll (no change)", list_polls, htmx, expect=(204,)))
    if "list" in names:
        # What the thread page fetches right after it is drawn (`hx-trigger="load"`).
        found.append(Endpoint("list (htmx partial)", [f"{reverse('console:list')}?q=&filter=all"], htmx))
        found.append(Endpoint("search (htmx partial)", [f"{reverse('console:list')}?{urllib.parse.urlencode({'q': t})}" for t in terms], htmx))
    return found


def _console_patterns():
    from conversations.console import urls

    return [p for p in urls.urlpatterns if getattr(p, "name", None)]


def admin_endpoints() -> list[Endpoint]:
    return [
        Endpoint(f"admin {name}", [url])
        for name, url in [
            ("conversations", "/admin/conversations/conversation/"),
            ("conversations search", "/admin/conversations/conversation/?q=Rossi"),
            ("messages", "/admin/conversations/message/"),
            ("messages by direction", "/admin/conversations/message/?direction__exact=in"),
            ("client profiles", "/admin/profiles/clientprofile/"),
            ("webhook events", "/admin/webhooks/webhookevent/"),
        ]
    ]


def report(results: list[Endpoint], explain: bool) -> bool:
    print()
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores; other work on the machine inflates wall times, less so CPU)")
    print(f"{'endpoint':<26} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'CPU p50':>8} {'queries':>8} {'SQL p95':>8} {'errors':>6}  target")
    ok = True
    for e in results:
        times = [s.ms for s in e.samples]
        sql = [s.sql_ms for s in e.samples]
        queries = statistics.median([s.queries for s in e.samples])
        target = TARGETS_MS.get(e.name)
        key = "p95"
        verdict = ""
        if target:
            good = percentile(times, 95) < target and not any(s.error for s in e.samples)
            ok &= good
            verdict = f"{key} < {target} ms {'OK' if good else 'MISSED'}"
        print(
            f"{e.name:<26} {len(times):>4} {statistics.median(times):>8.1f} {percentile(times, 95):>8.1f} {max(times):>8.1f} "
            f"{statistics.median([s.cpu_ms for s in e.samples]):>8.1f} "
            f"{queries:>8.0f} {percentile(sql, 95):>8.1f} {sum(1 for s in e.samples if s.error):>6}  {verdict}"
        )
    if explain:
        from django.db import connection

        for e in results:
            slow = max(e.samples, key=lambda s: s.slowest_sql[0])
            took, sql, params = slow.slowest_sql
            print(f"\n--- {e.name}: slowest query {took:.1f} ms ---\n{sql % tuple(_literal(p) for p in params) if params else sql}")
            if not sql:
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print("\n".join(row[0] for row in cursor.fetchall()))
    return ok


def _literal(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def main() -> int:
    args = parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    database_ensure(url)
    django_setup(url)

    from django.contrib.auth import get_user_model
    from django.test import Client

    have = counts()
    want = (args.conversations, (args.messages // args.conversations) * args.conversations)
    # reltuples is an estimate: within 2% counts as seeded.
    if args.reseed or not all(abs(h - w) <= 0.02 * w for h, w in zip(have, want)):
        print(f"seeding {want[0]:,} conversations and {want[1]:,} messages into {urllib.parse.urlsplit(url).path[1:]} ...", flush=True)
        seed(conversations=args.conversations, messages=args.messages)
    else:
        print(f"reusing the seeded data (~{have[0]:,} conversations, ~{have[1]:,} messages); --reseed to load again")

    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)

    rng = random.Random(4)
    results = endpoints(rng) + (admin_endpoints() if args.admin else [])
    for e in results:
        n = args.requests if not e.name.startswith("admin") else max(10, args.requests // 10)
        run(e, client, n)
        print(f"  measured {e.name}", flush=True)
    ok = report(results, args.explain)
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
