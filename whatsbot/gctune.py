"""Python's cyclic garbage collector, tuned for the long-running processes (worker, web).

CPython collects its youngest generation every 700 (net) allocations of container objects
and, about every hundred of those, traverses every tracked object of the process. A worker process holds about 140,000
objects once Django, Celery and the OpenAI SDK are imported, plus what a few hundred texts
in flight hold while they wait for the model: measured under `bench/agent_load.py`, each
full collection stopped the whole process, and with it the event loop and every text in
it, for 90 to 280 ms, and the middle generation's for up to 60 ms. That was most of the
bot's tail latency.

`process_ready` is called once the process has imported what it runs:
- it collects once, then moves every object alive into the permanent generation
  (`gc.freeze`), which no collection traverses again (modules, classes, settings, the
  URLconf: they live as long as the process). In gunicorn's master (`--preload`) this
  also keeps the collector from touching, and so copying, the pages that the forked
  workers share;
- it raises the thresholds, so the young generation is collected after 10,000
  allocations instead of 700 (most of a text's objects are gone by then) and the older
  ones less often. Memory stays bounded: the thresholds count allocations, and a full
  collection still runs once the objects that survived grow by a quarter. (With no text
  leaving garbage in reference cycles, a `gc.DEBUG_SAVEALL` check over 10 s of the bench
  found none in the worker or the webhook, the collector has little to find anyway:
  RSS under the bench was the same, 150 MiB per worker process.)
"""

from __future__ import annotations

import gc
import resource

THRESHOLDS = (10_000, 20, 20)


def process_ready() -> None:
    """Freeze what the process holds now and apply THRESHOLDS (safe to call again)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def files_limit_raise() -> None:
    """Let the process open as many files as the system allows it (the soft limit up to the
    hard one): a worker keeps a connection open for every model call in flight, over a
    thousand at once with a slow model, and a soft limit of 1,024 is common."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
