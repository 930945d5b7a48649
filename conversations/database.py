"""PostgreSQL for code running on an event loop: one small async psycopg pool per loop.

The worker's loop keeps its pool for the life of the process; a short `asyncio.run` (a
task run eagerly, a test: `conversations.runtime.run`) gets one for its run, closed at
the end. Connections are opened with Django's own parameters
(settings' OPTIONS: the same server, type adapters, time zone and prepared-statement
policy as the ORM's), in autocommit mode.

`statement()` is how the hot statements of `conversations.sql` run. Their parameters are all
sent as text (`params()`) and cast in the SQL (`%(id)s::bigint`): psycopg keys its cache of
prepared statements on a statement's text and its parameters' types, and text goes with
the "unknown" type whatever the value, NULL included, so the cache holds one entry per
statement text — it never evicts and never deallocates — while each plan still sees typed
values it can use with an index. A connection whose cache no longer matches the server's (a
failure we cannot rule out) is closed, not reused. Transient failures of the connection
are retried a bounded number of times on a fresh one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Tries of one statement when the connection fails under it (each on a fresh connection).
STATEMENT_ATTEMPTS = 3
# Errors after which a connection is not trusted again: it is closed and the statement
# retried on another.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.InvalidSqlStatementName)

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool] = weakref.WeakKeyDictionary()
_opening: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def connection_params() -> dict:
    """Django's parameters for the default database, for an async autocommit connection."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params.pop("cursor_factory", None)  # Django's is a sync class
    params["autocommit"] = True
    # These connections run only the hot statements, each a look-up by key, planned once per
    # connection (generic plans) and kept for its life: planned while the tables are small (a
    # new install, a test) a sequential scan looks cheaper than the index, and the plan would
    # stay that way as the tables grow. Never a sequential scan here.
    params["options"] = f"{params.get('options', '')} -c enable_seqscan=off".strip()
    return params


async def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is not None:
        return pool
    lock = _opening.setdefault(loop, asyncio.Lock())
    async with lock:
        pool = _pools.get(loop)
        if pool is None:
            pool = AsyncConnectionPool(
                kwargs=connection_params(), min_size=1, max_size=settings.WORKER_DB_CONNECTIONS, open=False, name="whatsbot", timeout=30
            )
            await pool.open()
            _pools[loop] = pool
    return pool


@asynccontextmanager
async def connection():
    """A connection of the running loop's pool."""
    pool = await _pool()
    async with pool.connection() as conn:
        yield conn


async def close() -> None:
    """Close the running loop's pool (at the end of the loop's work)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


async def statement(work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """`work(conn)` on a connection of the pool, retried on a fresh connection when the
    connection fails under it (at most STATEMENT_ATTEMPTS times). Any other database error
    is the caller's."""
    for attempt in range(1, STATEMENT_ATTEMPTS + 1):
        async with connection() as conn:
            try:
                return await work(conn)
            except _CONNECTION_ERRORS as exc:
                # Not back into the pool as it is: closed connections are discarded.
                await conn.close()
                if attempt == STATEMENT_ATTEMPTS:
                    raise
                logger.warning("database connection failed (%s), retrying on another: %s", type(exc).__name__, exc)
        await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_text(value) -> str:
    return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))


def params(**values) -> dict[str, str | None]:
    """A statement's parameters, each as text (None: NULL), for placeholders that cast them
    in the SQL: ints, Decimals, bools, datetimes, lists of ints (a PostgreSQL array), and
    dicts (JSON, for `::jsonb`)."""
    return {name: _text(value) for name, value in values.items()}


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "{" + ",".join(str(int(v)) for v in value) + "}"
    if isinstance(value, dict):
        return json_text(value)
    raise TypeError(f"{type(value).__name__} has no text form here")
