"""`conversations.groupcommit.GroupCommit`: jobs submitted concurrently are stored in batches,
one leader at a time, each caller getting its own result or its own error. (Ingest's use of
it, on PostgreSQL: test_ingest.py.)"""

from __future__ import annotations

import threading
import time

from conversations.groupcommit import GroupCommit


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


class _Gate:
    """A store that holds its first batch until `waiting` more jobs have queued up."""

    def __init__(self, store, waiting: int) -> None:
        self.store, self.waiting, self.batches = store, waiting, []
        self.group: GroupCommit | None = None

    def __call__(self, jobs):
        if not self.batches:
            _wait_for(lambda: self.group.pending() >= self.waiting)
        self.batches.append(list(jobs))
        return self.store(jobs)


def _run_all(group: GroupCommit, jobs: list) -> dict:
    outcomes: dict = {}

    def one(job):
        try:
            outcomes[job] = group.run(job)
        except BaseException as exc:
            outcomes[job] = exc

    threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
    threads[0].start()
    _wait_for(lambda: group._busy)  # the first one leads
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(10)
    return outcomes


def test_requests_arriving_while_one_stores_are_stored_together_and_each_gets_its_own_result():
    gate = _Gate(lambda jobs: [job * 10 for job in jobs], waiting=4)
    gate.group = group = GroupCommit(gate)
    outcomes = _run_all(group, [1, 2, 3, 4, 5])
    assert outcomes == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
    assert [len(b) for b in gate.batches] == [1, 4]
    assert gate.batches[0] == [1]
    assert not group._busy and group.pending() == 0


def test_a_lone_request_is_a_batch_of_one():
    seen = []
    group = GroupCommit(lambda jobs: seen.append(list(jobs)) or ["ok"] * len(jobs))
    assert group.run("a") == "ok"
    assert group.run("b") == "ok"
    assert seen == [["a"], ["b"]]


def test_a_batch_that_fails_is_stored_job_by_job_and_only_the_bad_job_fails():
    def store(jobs):
        if "bad" in jobs:
            raise ValueError("bad job")
        return [f"stored {job}" for job in jobs]

    gate = _Gate(store, waiting=3)
    gate.group = group = GroupCommit(gate)
    outcomes = _run_all(group, ["first", "x", "bad", "y"])
    assert outcomes["first"] == "stored first"
    assert outcomes["x"] == "stored x" and outcomes["y"] == "stored y"
    assert isinstance(outcomes["bad"], ValueError)
    # The batch of three failed, then each of its jobs went alone.
    assert [len(b) for b in gate.batches] == [1, 3, 1, 1, 1]


def test_a_batch_is_capped_by_weight_and_the_rest_follows_in_the_next():
    gate = _Gate(lambda jobs: list(jobs), waiting=4)
    gate.group = group = GroupCommit(gate, weight=lambda job: job, max_weight=5)
    outcomes = _run_all(group, [1, 2, 2, 2, 9])
    assert outcomes == {1: 1, 2: 2, 9: 9}
    # After the leader's own batch: 2+2 fit in 5, then 2, then 9 alone (over the cap, but never split).
    assert [sum(b) for b in gate.batches] == [1, 4, 2, 9]


def test_a_failure_of_a_lone_job_is_raised_to_its_caller_and_the_next_one_leads():
    def store(jobs):
        if jobs == ["bad"]:
            raise ValueError("bad job")
        return list(jobs)

    group = GroupCommit(store)
    try:
        group.run("bad")
    except ValueError as exc:
        assert str(exc) == "bad job"
    else:
        raise AssertionError("the lone job's error was not raised")
    assert not group._busy
    assert group.run("good") == "good"


def test_an_error_that_is_not_an_exception_fails_the_whole_batch_without_retrying_it():
    class Stop(BaseException):
        pass

    calls = []

    def store(jobs):
        calls.append(list(jobs))
        if len(calls) == 2:
            raise Stop()
        return list(jobs)

    gate = _Gate(store, waiting=2)
    gate.group = group = GroupCommit(gate)
    outcomes = _run_all(group, ["first", "a", "b"])
    assert outcomes["first"] == "first"
    assert isinstance(outcomes["a"], Stop) and isinstance(outcomes["b"], Stop)
    assert calls == [["first"], ["a", "b"]]  # not stored job by job: it is no job's fault
    assert not group._busy
