"""The worker's pool (`whatsbot.workerpool.TaskPool`): a task that only hands an id to the event
loop runs in the consumer's own thread while the loop has a free slot; anything else, and a
loop task when the loop is full, runs on the pool's threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

import conversations.tasks  # noqa: F401  (registers the app's tasks)
from conversations import queueing, runtime
from whatsbot.celery import app as celery_app
from whatsbot.workerpool import LOOP_TASKS, TaskPool

TASK_ARGS = ("task-id", {}, b"[[1], {}, {}]", "application/json", "utf-8")


@pytest.fixture
def loop(settings):
    """The process's event loop with room for two turns, stopped after the test."""
    runtime.shutdown(5)  # one an earlier test left, sized by other settings
    settings.WORKER_MAX_IN_FLIGHT = 2
    yield runtime.get()
    runtime.shutdown(5)


@pytest.fixture
def pool():
    pool = TaskPool(limit=2)
    yield pool
    pool.on_stop()


def done(result) -> None:
    """The pool's callback with the task's result (Celery's request acknowledges it there)."""


def where_it_ran(pool: TaskPool, name: str) -> threading.Thread:
    ran: list[threading.Thread] = []
    result = pool.on_apply(lambda *args: ran.append(threading.current_thread()), args=(name, *TASK_ARGS), callback=done)
    if result is not None:
        result.wait(5)
    return ran[0]


def test_of_the_app_s_tasks_exactly_those_that_dispatch_to_the_loop_run_in_the_consumers_thread(loop, pool):
    names = sorted(name for name in celery_app.tasks if name.startswith("conversations."))

    inline = {name for name in names if where_it_ran(pool, name) is threading.current_thread()}

    assert inline == {queueing.INBOUND_HANDLE, queueing.AGENT_REPLY, queueing.MESSAGE_DELIVER}
    assert {queueing.INBOUND_SWEEP, queueing.OUTBOUND_SWEEP, queueing.STATUS_SWEEP} <= set(names)


@pytest.mark.parametrize("name", sorted(LOOP_TASKS))
def test_a_loop_task_runs_in_the_consumers_thread(loop, pool, name):
    assert where_it_ran(pool, name) is threading.current_thread()
    assert loop._slots._value == 2  # the slot it did not use is given back


def test_a_sweep_runs_on_the_pools_threads(loop, pool):
    assert where_it_ran(pool, "conversations.tasks.inbound_sweep") is not threading.current_thread()


def test_a_loop_task_goes_to_the_pools_threads_when_the_loop_is_full(loop, pool):
    loop._slots.acquire()
    loop._slots.acquire()
    try:
        assert where_it_ran(pool, "conversations.tasks.inbound_handle") is not threading.current_thread()
    finally:
        loop._slots.release()
        loop._slots.release()


def test_the_turn_submitted_inline_takes_the_slot_reserved_for_it(loop, pool, settings):
    """With one free slot, the reserved one: a submit that waited for a slot of its own would
    never return."""
    loop._slots.acquire()  # one turn in flight already
    release = threading.Event()
    futures = []

    async def turn():
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return "done"

    result = pool.on_apply(
        lambda *args: futures.append(runtime.submit(turn)), args=("conversations.tasks.inbound_handle", *TASK_ARGS), callback=done
    )

    assert result is None and len(futures) == 1  # inline: submitted before on_apply returned
    assert loop._slots._value == 0 and loop.in_flight() == 1
    release.set()
    assert futures[0].result(5) == "done"
    loop._slots.release()
    assert loop.drain(5)
    assert loop._slots._value == 2
