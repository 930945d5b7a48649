"""Where a customer's turn and a delivery run: one asyncio event loop per worker process.

A turn spends seconds waiting for the model and a few milliseconds working; a worker
process holds a thousand and more of them in flight on one loop, each a coroutine, instead
of a thread each. The Celery task only hands the message id to the loop (`submit`) and
returns. Code with no async form (the ORM, a Redis publish) runs on a few kept threads
(`sync`). A task run eagerly (the tests, CELERY_TASK_ALWAYS_EAGER) runs the very same
coroutine with `run`, on a loop of its own for the call.

At most WORKER_MAX_IN_FLIGHT turns are in a process's loop at once: past that the Celery
task waits for a slot, so the backlog stays in Redis. While a turn or a delivery works on
messages it holds their leases (`holding`): the loop moves them forward every
LEASE_RENEW_SECONDS, so a lease can be short and a killed worker's customers are taken up
by the sweeper within a minute or two. A warm shutdown waits up to WORKER_DRAIN_SECONDS for
the turns in flight (`shutdown`); what is left stays leased and comes back the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from typing import Any, TypeVar

import uvloop
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from integrations import http

from . import database
from .agent import openai_client
from .decisions import Outcome
from .models import LEASE
from .sql import reply as reply_sql

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How often the loop moves the leases of the work in flight forward (a third of LEASE).
LEASE_RENEW_SECONDS = LEASE.total_seconds() / 3
# Seconds (`sys.setswitchinterval`) in a worker process once its loop runs: the loop gives
# up the GIL on every socket and database call, and a thread that took it meanwhile (Celery's
# consumer) keeps it up to the switch interval (5 ms by default) before the loop goes on.
GIL_SWITCH_INTERVAL = 0.0005
# Seconds `run` waits, at the end, for what its call started without waiting for.
RUN_SETTLE_SECONDS = 10.0


class Runtime:
    """The worker process's loop, on a thread of its own."""

    def __init__(self) -> None:
        # uvloop (libuv): the loop's own work per socket operation is a third of asyncio's.
        self.loop = uvloop.new_event_loop()
        self._sync_threads = settings.WORKER_SYNC_THREADS
        self.executor = ThreadPoolExecutor(max_workers=self._sync_threads, thread_name_prefix="worker-sync")
        self.loop.set_default_executor(self.executor)
        self._slots = threading.BoundedSemaphore(settings.WORKER_MAX_IN_FLIGHT)
        self._futures: set[Future] = set()
        self._futures_lock = threading.Lock()
        self.held: Counter[int] = Counter()  # message ids whose leases the loop keeps (on the loop only)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self.thread = threading.Thread(target=self._run, name="worker-loop", daemon=True)
        self.thread.start()
        self._renewer = asyncio.run_coroutine_threadsafe(self._leases_renew(), self.loop)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        _loops[self.loop] = self
        self.loop.run_forever()

    # --- from other threads ---------------------------------------------------------------

    def submit(self, fn: Callable[..., Awaitable[Any]], /, *args, **kwargs) -> Future:
        """Run the coroutine function `fn` on the loop; waits for a free slot first (unless
        this thread reserved one: `reserve`)."""
        if getattr(_reserved, "runtime", None) is self:
            _reserved.runtime = None
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
            # What it held stays leased: the sweepers take it up once the lease ends.
            logger.error("a turn failed; the sweeper will take it up again", exc_info=future.exception())

    def reserve(self) -> bool:
        """Take a slot now, without waiting, for this thread's next `submit` (False: the
        loop is full). `unreserve` gives it back if that submit did not happen."""
        if not self._slots.acquire(blocking=False):
            return False
        _reserved.runtime = self
        return True

    def unreserve(self) -> None:
        if getattr(_reserved, "runtime", None) is self:
            _reserved.runtime = None
            self._slots.release()

    def in_flight(self) -> int:
        with self._futures_lock:
            return len(self._futures)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the turns in flight; True when none is left."""
        with self._futures_lock:
            pending = list(self._futures)
        _done, not_done = futures_wait(pending, timeout=timeout)
        if not_done:
            logger.warning("%d turn(s) still in flight at shutdown; the sweeper will take them up", len(not_done))
        return not not_done

    def close(self, timeout: float = 10.0) -> None:
        """Close the loop's connections and stop it (after `drain`)."""
        self._renewer.cancel()
        try:
            asyncio.run_coroutine_threadsafe(_loop_resources_close(), self.loop).result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            self._sync_threads_close(timeout)
            self.executor.shutdown(wait=True, cancel_futures=True)

    def _sync_threads_close(self, timeout: float) -> None:
        """Each of the loop's threads closes its own Django connections (kept open between
        calls; only the thread that opened one may close it). One call per thread: each
        waits at the barrier until every thread has one."""
        threads = self._sync_threads
        barrier = threading.Barrier(threads, timeout=timeout)

        def close() -> None:
            connections.close_all()
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass  # a thread still busy: its connections end with the process

        futures_wait([self.executor.submit(close) for _ in range(threads)], timeout=timeout)

    # --- on the loop --------------------------------------------------------------------------

    async def _leases_renew(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            ids = list(self.held)
            if not ids:
                continue
            try:
                await reply_sql.leases_renew(ids=ids, locked_until=timezone.now() + LEASE)
            except Exception:
                logger.exception("could not renew the leases of %d message(s)", len(ids))


_instance: Runtime | None = None
_instance_lock = threading.Lock()
_reserved = threading.local()
_loops: dict[asyncio.AbstractEventLoop, Runtime] = {}


def get() -> Runtime:
    """This process's loop, started on first use (after the worker forked, if it does)."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = Runtime()
    return _instance


def submit(fn: Callable[..., Awaitable[Any]], /, *args, **kwargs) -> Future:
    return get().submit(fn, *args, **kwargs)


def shutdown(timeout: float) -> bool:
    """At a warm shutdown: wait up to `timeout` seconds for the turns in flight, then stop
    the loop, if this process has one. True when nothing was left in flight."""
    global _instance
    runtime = _instance
    if runtime is None:
        return True
    drained = runtime.drain(timeout)
    with _instance_lock:
        if _instance is runtime:
            _instance = None
    runtime.close()
    _loops.pop(runtime.loop, None)
    return drained


def run(fn: Callable[..., Awaitable[T]], /, *args, **kwargs) -> T:
    """Run the coroutine function to its end from synchronous code, on a loop of its own
    (closed with its connections afterwards). From a thread whose own loop is running
    (a test driving a browser), on a helper thread."""

    async def main() -> T:
        try:
            return await fn(*args, **kwargs)
        finally:
            # The database pool's own tasks (its workers, its scheduler) live as long as the
            # pool: closed first, or they would be waited for to the end of RUN_SETTLE_SECONDS.
            await _close(database.close)
            # What the call started and did not wait for (a read receipt) ends next.
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if others:
                await asyncio.wait(others, timeout=RUN_SETTLE_SECONDS)
            await _loop_resources_close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="runtime-run") as helper:
        return helper.submit(asyncio.run, main()).result()


def dispatch(request, fn: Callable[..., Awaitable[Any]], /, *args) -> Any:
    """From a Celery task (`request` is the task's): to the worker's loop, or run to its end
    when the task runs eagerly (tests, CELERY_TASK_ALWAYS_EAGER)."""
    if request.is_eager:
        return run(fn, *args)
    submit(fn, *args)
    return Outcome.SUBMITTED


async def sync(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """Run synchronous code (the ORM, a Redis publish) on one of the loop's threads."""
    keep = asyncio.get_running_loop() in _loops  # the worker's threads live on; `run`'s end with it
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(_sync_call, keep, fn, args, kwargs))


def _sync_call(keep: bool, fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    finally:
        if keep:
            close_old_connections()  # as at the end of a request: broken or expired ones go
        else:
            connections.close_all()  # the thread ends with the loop: its connections with it


@contextmanager
def holding(ids: Iterable[int]) -> Iterator[None]:
    """While inside, the worker's loop keeps these messages' leases from running out."""
    runtime = _loops.get(asyncio.get_running_loop())
    ids = list(ids)
    if runtime is None:  # a short `run`: done long before a lease ends
        yield
        return
    runtime.held.update(ids)
    try:
        yield
    finally:
        runtime.held.subtract(ids)
        for pk in ids:
            if runtime.held[pk] <= 0:
                del runtime.held[pk]


async def _loop_resources_close() -> None:
    """What the running loop opened: the database pool, the OpenAI and provider HTTP sessions."""
    for close in (openai_client.close, http.close, database.close):
        await _close(close)


async def _close(close: Callable[[], Awaitable[None]]) -> None:
    try:
        await close()
    except Exception:
        logger.exception("closing the loop's connections")
