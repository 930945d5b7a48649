#!/usr/bin/env python3
"""psycopg alone: a ROLLBACK run as a statement inside a pipeline leaves a prepared
statement cached on the client and gone from the server, for good.

    .venv/bin/python bench/psycopg_prepared_repro.py [postgresql://postgres@127.0.0.1:5432/wb_burst_repro]

The sequence (what the worker's reply commit did when a newer text had come in):

1. an autocommit connection that prepares what it is asked to (prepare=True), with at
   least one statement prepared already;
2. in a pipeline: BEGIN, prepared statements, their rows read, then `execute("ROLLBACK")`;
3. the pipeline ends. Only now does psycopg see ROLLBACK's result: its prepared-statement
   cache takes a successful ROLLBACK as "the server may have dropped everything", forgets
   every name and queues a DEALLOCATE ALL, to be sent at the end of the *next* execute;
4. the next statement executed with prepare=True is prepared under a new name and cached,
   and then the queued DEALLOCATE ALL drops it on the server;
5. every later execution of that statement on this connection binds that name:
   InvalidSqlStatementName (26000), and nothing in psycopg forgets the name after the
   error. The connection is idle and healthy by every other measure, so a pool keeps it.

Without a pipeline the ROLLBACK's result is read inside its own execute, before the
DEALLOCATE ALL goes out, and nothing breaks: the controls below show that, and that a
COMMIT, `conn.rollback()` and evicting statements past `prepared_max` (parameter types
that vary: Python ints dump as int2/int4/int8/numeric by value) leave the cache right.
Exit status 1 when the bug shows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import psycopg
from psycopg_pool import AsyncConnectionPool
from support import database_ensure  # bench/support.py (the script's folder is on sys.path)

URL = "postgresql://postgres@127.0.0.1:5432/wb_burst_repro"
NEVER_AUTOMATICALLY = 1 << 30  # prepare only what is executed with prepare=True
QUERY = "SELECT %s::int + 1"  # "the next statement" (the worker's claim, in the product)


async def connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=NEVER_AUTOMATICALLY)


async def server_names(conn: psycopg.AsyncConnection) -> list[str]:
    # Not prepared (prepare=False): it must not touch the cache it looks at.
    cursor = await conn.execute("SELECT name FROM pg_prepared_statements ORDER BY name", prepare=False)
    return [row[0] for row in await cursor.fetchall()]


def client_names(conn: psycopg.AsyncConnection) -> list[str]:
    return sorted(name.decode() for name in conn._prepared._names.values())


async def transaction_in_pipeline(conn: psycopg.AsyncConnection, *, end: str) -> None:
    """BEGIN, two prepared statements, their rows read, then `end` ("COMMIT", "ROLLBACK",
    "rollback()": the connection's method, "ROLLBACK after": after the pipeline)."""
    async with conn.pipeline():
        await conn.execute(b"BEGIN")
        await conn.execute("SELECT %s::text", ["bump"], prepare=True)
        cursor = await conn.execute("SELECT %s::bigint, %s::text", [1, "insert"], prepare=True)
        await cursor.fetchone()
        if end == "rollback()":
            await conn.rollback()
        elif end != "ROLLBACK after":
            await conn.execute(end.encode())
    if end == "ROLLBACK after":
        await conn.execute(b"ROLLBACK")


async def next_statement_twice(conn: psycopg.AsyncConnection, log) -> str | None:
    """Run QUERY twice with prepare=True; the error of the second run, if any."""
    await conn.execute(QUERY, [1], prepare=True)
    log(f"  after the next statement's first run: client cache {client_names(conn)}, server {await server_names(conn)}")
    try:
        await conn.execute(QUERY, [2], prepare=True)
    except psycopg.errors.InvalidSqlStatementName as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def case_pipeline(url: str, end: str, *, verbose: bool = False) -> str | None:
    log = print if verbose else (lambda *a: None)
    async with await connect(url) as conn:
        await conn.execute("SELECT %s::int", [0], prepare=True)  # something prepared: the cache is not empty
        log(f"  start: client cache {client_names(conn)}, server {await server_names(conn)}")
        await transaction_in_pipeline(conn, end=end)
        # (Not asking the server here: any statement now would send the queued maintenance
        # and so hide the bug, as a plain BEGIN first does.)
        log(
            f"  after the pipeline ({end}): client cache {client_names(conn)}, "
            f"queued maintenance {list(conn._prepared._to_flush)} (None = DEALLOCATE ALL)"
        )
        return await next_statement_twice(conn, log)


async def case_unprepared_first(url: str) -> str | None:
    """The same ROLLBACK in a pipeline, but the next use of the connection starts with a
    statement that is not prepared (as the reply commit's BEGIN): the queued DEALLOCATE ALL
    goes out before anything is prepared again. Why the bug needs the wrong neighbour."""
    async with await connect(url) as conn:
        await conn.execute("SELECT %s::int", [0], prepare=True)
        await transaction_in_pipeline(conn, end="ROLLBACK")
        await conn.execute("SELECT 1", prepare=False)
        return await next_statement_twice(conn, lambda *a: None)


async def case_eviction(url: str) -> str | None:
    """Past prepared_max, in pipelines, with parameters whose types vary by value."""
    async with await connect(url) as conn:
        conn.prepared_max = 3
        values = [1, 40_000, 3_000_000_000, 10**20]  # int2, int4, int8, numeric
        for i in range(40):
            async with conn.pipeline():
                await conn.execute(b"BEGIN")
                for j in range(3):
                    await conn.execute(f"SELECT %s, {j}", [values[(i + j) % 4]], prepare=True)
                await conn.execute(b"COMMIT")
            try:
                for j in range(3):
                    await conn.execute(f"SELECT %s, {j}", [values[(i * 7 + j) % 4]], prepare=True)
            except psycopg.errors.InvalidSqlStatementName as exc:
                return f"{type(exc).__name__}: {exc}"
        return None


async def case_pool(url: str) -> tuple[int, int, list[int]]:
    """The failing connection in a pool: how many of 20 later uses of the statement fail,
    and on which server processes (always the same one: the pool keeps it)."""

    async def configure(conn):
        await conn.execute("SET TIME ZONE 'UTC'")

    failures, pids = 0, set()
    async with AsyncConnectionPool(
        url, min_size=1, max_size=1, kwargs={"autocommit": True, "prepare_threshold": NEVER_AUTOMATICALLY},
        configure=configure, open=False,
    ) as pool:  # fmt: skip
        async with pool.connection() as conn:
            await conn.execute("SELECT %s::int", [0], prepare=True)
            await transaction_in_pipeline(conn, end="ROLLBACK")
        async with pool.connection() as conn:
            await conn.execute(QUERY, [1], prepare=True)
        for i in range(20):
            async with pool.connection() as conn:
                pids.add(conn.info.backend_pid)
                try:
                    await conn.execute(QUERY, [i], prepare=True)
                except psycopg.errors.InvalidSqlStatementName:
                    failures += 1
        return failures, 20, sorted(pids)


async def main(url: str) -> int:
    print(f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}, {psycopg.pq.__impl__}), server {url}")
    print("\nThe failing sequence: BEGIN, prepared statements, ROLLBACK, all in one pipeline; then a new statement, twice:")
    bug = await case_pipeline(url, "ROLLBACK", verbose=True)
    print(f"  second run of the next statement: {bug or 'ok'}")

    print("\nA pool keeps the connection (idle, no error in its state): 20 later uses of the same statement")
    failures, uses, pids = await case_pool(url)
    print(f"  {failures} of {uses} failed, on server process(es) {pids}")

    print("\nControls (same steps, one thing changed):")
    controls = {
        "COMMIT in the pipeline": await case_pipeline(url, "COMMIT"),
        "conn.rollback() in the pipeline": await case_pipeline(url, "rollback()"),
        "ROLLBACK after the pipeline (no pipeline)": await case_pipeline(url, "ROLLBACK after"),
        "ROLLBACK in the pipeline, then any statement not prepared first": await case_unprepared_first(url),
        "eviction past prepared_max=3, int2/int4/int8/numeric parameters": await case_eviction(url),
    }
    for name, error in controls.items():
        print(f"  {name}: {error or 'ok'}")

    shows = bool(bug) and failures == uses
    print(
        "\nBUG SHOWS: a ROLLBACK executed inside a pipeline makes psycopg DEALLOCATE ALL after the next statement "
        "is prepared; that statement then fails on this connection for good."
        if shows
        else "\nbug does not show with this psycopg"
    )
    return 1 if shows else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default=URL, help=f"the PostgreSQL database to use, created if missing (default: {URL})")
    url = parser.parse_args().url
    database_ensure(url)
    sys.exit(asyncio.run(main(url)))
