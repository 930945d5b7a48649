"""Where a customer's turn runs (`conversations.runtime`): the worker process's event loop
(`Runtime`: a bounded number of turns in flight, slots reserved for the consumer's hand-off,
drained at a warm shutdown, leases kept while work is held) and `run` for synchronous
callers."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from conversations import runtime, turn
from conversations.models import LEASE, Message, MessageStatus
from conversations.sql import claim as claim_sql

from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.workers import until


def waits_for(event: threading.Event):
    async def waits() -> str:
        await asyncio.get_running_loop().run_in_executor(None, event.wait, 5)
        return "done"

    return waits


def database_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.fixture
def own_loop(settings):
    """A Runtime of the test's own (not the process's) with room for one turn."""
    settings.WORKER_MAX_IN_FLIGHT = 1
    loops: list[runtime.Runtime] = []

    def make() -> runtime.Runtime:
        loops.append(runtime.Runtime())
        return loops[-1]

    yield make
    for loop in loops:
        loop.drain(5)
        loop.close()


@pytest.fixture
def worker_loop(settings):
    """The process's loop, as a worker has it; stopped (drained) after the test."""
    settings.REPLY_DEBOUNCE_SECONDS = 0
    assert runtime._instance is None
    yield runtime.get()
    assert runtime.shutdown(10)


# --- run: from synchronous code ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run_returns_when_the_call_is_done_not_when_the_settle_time_is_up(monkeypatch):
    monkeypatch.setattr(runtime, "RUN_SETTLE_SECONDS", 60)
    message = MessageFactory(text="Ciao")

    started = time.monotonic()
    loaded = runtime.run(claim_sql.load, message_id=message.pk)  # opens the loop's database pool

    assert loaded.message.pk == message.pk
    assert time.monotonic() - started < 15


def test_run_waits_for_what_the_call_started_without_waiting_for_it():
    finished: list[str] = []

    async def background():
        await asyncio.sleep(0.1)
        finished.append("receipt")

    async def call():
        asyncio.get_running_loop().create_task(background())  # like a read receipt
        return "answered"

    assert runtime.run(call) == "answered"
    assert finished == ["receipt"]


def test_run_from_a_thread_whose_loop_is_running_uses_a_helper_thread():
    async def where() -> threading.Thread:
        return threading.current_thread()

    async def browser_test() -> threading.Thread:
        # A test driving a browser has a running loop on its thread: `run` cannot nest in it.
        return runtime.run(where)

    here_thread = threading.current_thread()
    ran_on = asyncio.run(browser_test())

    assert ran_on is not here_thread


def test_run_raises_what_the_call_raised():
    async def fails():
        raise LookupError("no such message")

    with pytest.raises(LookupError, match="no such message"):
        runtime.run(fails)


# --- the worker's loop -----------------------------------------------------------------------


def test_the_loop_holds_at_most_its_limit_in_flight_and_drains(own_loop):
    loop = own_loop()
    release = threading.Event()

    first = loop.submit(waits_for(release))
    second_submitted = threading.Event()
    threading.Thread(target=lambda: (loop.submit(waits_for(release)), second_submitted.set()), daemon=True).start()
    assert not second_submitted.wait(0.2)  # waiting for a free slot: the backlog stays in the broker
    assert loop.in_flight() == 1 and not loop.drain(0.05)
    release.set()
    assert first.result(5) == "done" and second_submitted.wait(5)
    assert loop.drain(5) and loop.in_flight() == 0


def test_a_reserved_slot_is_the_next_submit_s_and_an_unused_one_is_given_back(own_loop):
    loop = own_loop()
    release = threading.Event()

    assert loop.reserve()
    assert not loop.reserve()  # the only slot is taken
    future = loop.submit(waits_for(release))  # takes the reserved slot: no waiting
    assert loop.in_flight() == 1 and not loop.reserve()
    release.set()
    assert future.result(5) == "done" and loop.drain(5)

    assert loop.reserve()
    loop.unreserve()  # the hand-off did not happen
    loop.unreserve()  # twice changes nothing
    assert loop._slots._value == 1
    assert loop.submit(waits_for(release)).result(5) == "done"


def test_a_failing_turn_gives_its_slot_back_and_the_loop_goes_on(own_loop, caplog):
    loop = own_loop()

    async def fails():
        raise RuntimeError("boom")

    async def works() -> str:
        return "done"

    future = loop.submit(fails)

    assert isinstance(future.exception(5), RuntimeError)
    assert loop.submit(works).result(5) == "done"  # its slot (the only one) was given back
    assert "a turn failed; the sweeper will take it up again" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_loop_keeps_the_leases_of_what_it_holds_and_only_while_it_holds_them(own_loop, monkeypatch):
    monkeypatch.setattr(runtime, "LEASE_RENEW_SECONDS", 0.05)
    loop = own_loop()
    soon = timezone.now() + timezone.timedelta(seconds=5)
    held = MessageFactory(locked_until=soon)
    other = MessageFactory(locked_until=soon)
    holding, release = threading.Event(), threading.Event()

    async def works_on_held():
        with runtime.holding([held.pk]):
            holding.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return "done"

    future = loop.submit(works_on_held)
    assert holding.wait(5)
    until(lambda: Message.objects.get(pk=held.pk).locked_until != soon, 5, every=0.05)

    assert Message.objects.get(pk=held.pk).locked_until > timezone.now() + LEASE - timezone.timedelta(seconds=5)
    assert Message.objects.get(pk=other.pk).locked_until == soon  # not held: left to run out
    release.set()
    assert future.result(5) == "done"
    assert loop.held == {}

    Message.objects.filter(pk=held.pk).update(locked_until=soon)
    time.sleep(0.3)
    assert Message.objects.get(pk=held.pk).locked_until == soon  # let go: no longer renewed


def test_holding_on_a_short_run_s_loop_is_a_no_op():
    async def call():
        with runtime.holding([1, 2]):
            return "done"

    assert runtime.run(call) == "done"


@pytest.mark.django_db(transaction=True)
def test_a_warm_shutdown_lets_the_turns_in_flight_finish(worker_loop, fake_openai, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")
    sessions = database_sessions()
    thinking = threading.Event()
    fake_openai.on_reply = lambda body: (thinking.set(), time.sleep(0.3))

    future = runtime.submit(turn.message_handle, message.pk)
    assert thinking.wait(5)
    assert runtime.shutdown(10)  # waits for it, then closes the loop's connections

    assert future.result(0) == "sent"
    assert Message.objects.get(direction="out").status == MessageStatus.SENT
    # Its pool's and its threads' connections are closed (a server process ends a moment after its client).
    until(lambda: database_sessions() <= sessions, 5, every=0.05)
    assert database_sessions() <= sessions
    assert runtime._instance is None
    assert runtime.get() is not worker_loop  # a later use starts a new loop


def test_a_shutdown_without_a_loop_has_nothing_to_wait_for():
    assert runtime._instance is None
    assert runtime.shutdown(1)


def test_a_shutdown_that_runs_out_of_time_says_so(settings):
    release = threading.Event()
    loop = runtime.get()
    loop.submit(waits_for(release))
    threading.Timer(0.5, release.set).start()  # the closing waits for the loop's busy thread

    assert not runtime.shutdown(0.1)
    assert runtime._instance is None


@pytest.mark.django_db(transaction=True)
def test_a_text_on_the_worker_loop_leaves_no_database_wrapper_behind(worker_loop, fake_openai, graph):
    # `connections[...]` on the loop would give each task a DatabaseWrapper of its own: a dozen
    # objects in reference cycles per text, for the garbage collector to stop the loop over.
    from django.db.backends.base.base import BaseDatabaseWrapper

    def wrappers() -> int:
        return sum(isinstance(o, BaseDatabaseWrapper) for o in gc.get_objects())

    def handle_on_the_loop(text: str) -> str:
        return worker_loop.submit(turn.message_handle, MessageFactory(conversation=conversation, text=text).pk).result(10)

    conversation = ConversationFactory()
    assert handle_on_the_loop("Ciao") == "sent"  # warm: the loop's threads, clients
    gc.collect()
    gc.disable()  # garbage stays countable
    try:
        before = wrappers()
        for text in ("Avete sconti?", "E per le spedizioni?", "Grazie"):
            assert handle_on_the_loop(text) == "sent"
        assert wrappers() == before
    finally:
        gc.enable()
