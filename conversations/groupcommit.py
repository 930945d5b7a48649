"""Group commit: concurrent deliveries of one web process share one transaction.

Each POST that stores messages pays a fixed price whatever it carries: two round trips to
PostgreSQL, a statement to parse and execute for the profiles/conversations/messages, one
for the threads, one for the event row, a commit (WAL flush) and a Redis round trip. A
POST of 50 messages costs about six times one of a single message, not fifty times. Meta
sends one message per POST when traffic is light and batches only under heavy load, so
the web process batches itself: while one request thread is storing, the requests that
arrive meanwhile queue up, and the next flush stores all of them at once.

Leader and followers, no extra thread: the first request to arrive while nobody is storing
becomes the leader and stores the queue (its own job first) with its own database
connection. Requests arriving meanwhile wait; when the leader is done it answers them and
passes the lead to the oldest waiting request, which stores everything queued since. A
lone request (the sync worker, a quiet night) is a batch of one and waits for nobody.

Every request still answers only after its own rows are committed and its tasks queued,
so the webhook's guarantees are unchanged. A batch that fails is retried job by job, so
one bad delivery fails only its own request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class _Slot(Generic[Job, Result]):
    __slots__ = ("job", "ready", "lead", "result", "error")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.ready = threading.Event()
        self.lead = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Job, Result]):
    """Runs `store(jobs) -> results` for jobs submitted concurrently, in batches.

    `store` gets the jobs in arrival order and returns one result per job. If it raises for
    a batch of several jobs, each is stored again on its own, so one bad job fails only its
    own caller. `max_weight` caps a batch (`weight(job)`, e.g. its number of messages; the
    leader's own job always goes in).
    """

    def __init__(self, store: Callable[[Sequence[Job]], Sequence[Result]], *,
                 weight: Callable[[Job], int] = lambda job: 1, max_weight: int = 200) -> None:  # fmt: skip
        self._store = store
        self._weight = weight
        self.max_weight = max_weight
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False

    def run(self, job: Job) -> Result:
        slot: _Slot = _Slot(job)
        with self._lock:
            self._queue.append(slot)
            leader = not self._busy
            self._busy = True
        if not leader:
            slot.ready.wait()
            if not slot.lead:
                return self._outcome(slot)
        # The leader's slot is first in the queue: nobody else takes from it while it leads.
        with self._lock:
            batch, weight = [], 0
            for queued in self._queue:
                weight += self._weight(queued.job)
                if batch and weight > self.max_weight:
                    break
                batch.append(queued)
            del self._queue[: len(batch)]
        try:
            self._flush(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.ready.set()
                else:
                    self._busy = False
            for other in batch[1:]:
                other.ready.set()
        return self._outcome(slot)

    def _flush(self, batch: list[_Slot]) -> None:
        try:
            results = self._store([s.job for s in batch])
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, Exception):
                for s in batch:
                    s.error = exc
                return
            for s in batch:  # one bad job must not fail the others: each on its own
                self._flush([s])
            return
        for s, result in zip(batch, results, strict=True):
            s.result = result

    @staticmethod
    def _outcome(slot: _Slot) -> Result:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)
