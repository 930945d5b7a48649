"""One asyncio event loop per worker process, for the agent's customer texts.

A customer text spends about two seconds waiting for the model and a few milliseconds
working. With a thread per text in flight (Celery's threads pool), hundreds of threads of
one process take turns at the GIL on every socket and database round trip, and a thread
that is ready waits behind the others: that queueing, not the work, made the tail of the
bot's latency. Here the Celery task only hands the message id to this loop and returns;
the loop runs every text's round trips itself (async psycopg on a small pool of its own,
the async OpenAI client), in the order they become ready.

What has no async version (the ORM: the rare cases of a text, a profile update, the
Graph API's `requests` client) runs on a few kept threads (`run_sync`), each giving its
database connection back when done. At most AGENT_LOOP_MAX_IN_FLIGHT texts are in the
loop at once: past that the Celery task waits for a slot, so the queue stays in Redis. A
warm shutdown of the worker waits for the texts in flight (`drain`); a worker killed
outright leaves them claimed, and the sweeper queues them again once their lease ends,
as it does for a killed thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import asynccontextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)

# Seconds (`sys.setswitchinterval`), for the worker process once its loop starts.
GIL_SWITCH_INTERVAL = 0.0005


class EventLoop:
    def __init__(self) -> None:
        import uvloop  # only the worker needs it

        # uvloop (libuv): the loop's own work per socket operation is a third of asyncio's.
        self.loop = uvloop.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=settings.AGENT_LOOP_SYNC_THREADS, thread_name_prefix="loop-sync")
        self.loop.set_default_executor(self.executor)
        # The Graph API's calls (sends, read receipts) on threads of their own: a wave of
        # slow fallbacks (new OpenAI conversations, summaries) never holds up a reply's send.
        self.http_executor = ThreadPoolExecutor(max_workers=settings.AGENT_LOOP_SYNC_THREADS, thread_name_prefix="loop-http")
        self._slots = threading.BoundedSemaphore(settings.AGENT_LOOP_MAX_IN_FLIGHT)
        self._futures: set[Future] = set()
        self._futures_lock = threading.Lock()
        self._pool = None
        self._pool_lock: asyncio.Lock | None = None
        self._connection_params = _connection_params()
        # The loop gives up the GIL on every socket and database call; a thread that took it
        # meanwhile (Celery's consumer) keeps it up to the switch interval (5 ms by default)
        # before the loop may go on: with dozens of such calls per second, that waiting
        # was most of the bot's tail latency. A shorter interval hands it back sooner.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self.thread = threading.Thread(target=self._run, name="agent-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # --- from other threads ---------------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Run the coroutine function `fn` on the loop; waits for a free slot first (unless
        this thread reserved one: `reserve`)."""
        if getattr(_reserved, "loop", None) is self:
            _reserved.loop = None  # the slot this thread reserved
        else:
            self._slots.acquire()
        try:
            future = asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self.loop)
        except BaseException:
            self._slots.release()
            raise
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._futures_lock:
            self._futures.discard(future)
        self._slots.release()
        if not future.cancelled() and future.exception() is not None:
            # Whatever it held stays claimed: the sweepers take it up once the lease ends.
            logger.error("event loop: a text failed", exc_info=future.exception())

    def reserve(self) -> bool:
        """Take a slot now, without waiting, for this thread's next `submit` (False: the
        loop is full). `unreserve` gives it back if that submit did not happen."""
        if not self._slots.acquire(blocking=False):
            return False
        _reserved.loop = self
        return True

    def unreserve(self) -> None:
        if getattr(_reserved, "loop", None) is self:
            _reserved.loop = None
            self._slots.release()

    def run(self, fn, /, *args, **kwargs):
        """`submit` and wait for the result (tests, management commands)."""
        return self.submit(fn, *args, **kwargs).result()

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the texts in flight; True when none is left."""
        with self._futures_lock:
            pending = list(self._futures)
        _done, not_done = futures_wait(pending, timeout=timeout)
        if not_done:
            logger.warning("event loop: %d text(s) still in flight at shutdown; the sweeper will take them up", len(not_done))
        return not not_done

    def close(self, timeout: float = 10.0) -> None:
        """Close the loop's connections and stop it (after `drain`)."""

        async def pool_close() -> None:
            from .agent.openai_client import async_clients_close

            await async_clients_close()
            if self._pool is not None:
                await self._pool.close()

        try:
            asyncio.run_coroutine_threadsafe(pool_close(), self.loop).result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.http_executor.shutdown(wait=True, cancel_futures=True)

    def in_flight(self) -> int:
        with self._futures_lock:
            return len(self._futures)

    # --- on the loop --------------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self):
        """A connection of the loop's own pool (autocommit; statements may be prepared)."""
        if self._pool is None:
            await self._pool_open()
        async with self._pool.connection() as conn:
            yield conn

    async def _pool_open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is not None:
                return
            pool = AsyncConnectionPool(
                kwargs=self._connection_params, min_size=1, max_size=settings.AGENT_LOOP_DB_CONNECTIONS,
                configure=_connection_configure, open=False, name="agent-loop", timeout=30,
            )  # fmt: skip
            await pool.open()
            self._pool = pool


def _connection_params() -> dict:
    """Django's own parameters for the default database (same server, same type adapters:
    rows read here become model instances exactly as the ORM's do)."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params.pop("cursor_factory", None)  # Django's is a sync class; the async default binds server-side
    params["autocommit"] = True
    params["prepare_threshold"] = 1 << 30  # only the statements executed with prepare=True
    return params


async def _connection_configure(conn) -> None:
    # As `conversations.db.prepared_statements_allow`, and the time zone Django sets.
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute("SET TIME ZONE 'UTC'")


_instance: EventLoop | None = None
_instance_lock = threading.Lock()
_reserved = threading.local()


def get() -> EventLoop:
    """This process's loop, started on first use (after the worker forked, if it does)."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = EventLoop()
    return _instance


def current() -> EventLoop:
    """The loop object, from code running on it."""
    assert _instance is not None and asyncio.get_running_loop() is _instance.loop
    return _instance


def shutdown(timeout: float) -> bool:
    """At a warm shutdown: wait up to `timeout` seconds for the texts in flight, then stop
    the loop, if this process has one. True when nothing was left in flight."""
    global _instance
    loop = _instance
    if loop is None:
        return True
    drained = loop.drain(timeout)  # the texts in flight still find the loop (`current`)
    with _instance_lock:
        if _instance is loop:
            _instance = None
    loop.close()
    return drained


async def run_sync(fn, /, *args, **kwargs):
    """Run a sync function (the ORM, `requests`) on one of the loop's kept threads; the
    thread's database connections go back (to the pool, or closed) when it is done."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(_sync_call, fn, args, kwargs))


async def run_http(fn, /, *args, **kwargs):
    """`run_sync` on the threads kept for the Graph API's calls."""
    loop = current()
    return await loop.loop.run_in_executor(loop.http_executor, functools.partial(_sync_call, fn, args, kwargs))


def _sync_call(fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    finally:
        # Not kept per thread: dozens of kept threads must not each hold a PostgreSQL
        # connection (with DATABASE_POOL_MAX_SIZE set, closing gives it back to the pool).
        connections.close_all()
