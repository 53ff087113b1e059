"""Reading many clusters while the calling thread works on what has arrived.

A policy sweep batch reads its clusters in threads (network, TLS and JSON decoding) and
judges each read in the calling thread. How many reads should be in flight depends on
the fleet: a cluster across an ocean takes half a second to list ten kinds while judging
it takes a few milliseconds, so dozens of reads must overlap to keep the judging busy;
clusters on a fast network answer in about the time judging takes, and every extra
thread then only adds contention for the GIL (measured: 2 ms of CPU per cluster with 8
threads against 2, on the benchmark's simulated fleet).

`adaptive_reads` keeps `ceil(read time / work time) + 1` reads in flight, from running
averages of both, between 1 and `limit`, and yields reads as they complete, so one
cluster that never answers holds up nothing but its own result.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Running averages weigh the newest sample by this much: a few clusters settle them, one
# slow cluster does not swing them.
_WEIGHT = 0.2
_FLOOR = 1e-4  # seconds: an instant consumer still counts as some work


@dataclass
class Concurrency:
    """The number of reads to keep in flight, from measured read and work times."""

    limit: int
    start: int = 2
    read: float | None = None  # running average, seconds
    work: float | None = None
    peak: int = field(default=0)

    def __post_init__(self) -> None:
        self.limit = max(1, self.limit)
        self.start = max(1, min(self.start, self.limit))

    def observe_read(self, seconds: float) -> None:
        self.read = seconds if self.read is None else self.read + _WEIGHT * (seconds - self.read)

    def observe_work(self, seconds: float) -> None:
        self.work = seconds if self.work is None else self.work + _WEIGHT * (seconds - self.work)

    @property
    def target(self) -> int:
        if self.read is None or self.work is None:
            return self.start
        wanted = math.ceil(self.read / max(self.work, _FLOOR)) + 1
        return max(1, min(self.limit, wanted))


@dataclass
class _Timed(Generic[Result]):
    value: Result
    seconds: float


def adaptive_reads(
    items: Iterable[Item],
    read: Callable[[Item], Result],
    *,
    limit: int,
    thread_name_prefix: str = "read",
    concurrency: Concurrency | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> Iterator[tuple[Item, Result]]:
    """Yield `(item, read(item))` in completion order, `read` running in up to `limit`
    threads. `read` must not raise (return the error instead): a raised exception ends
    the iteration. The time the consumer spends between two yields is the work time.
    `pool` runs the reads in threads that outlive the call (`ReadPool`); without it the
    threads are the call's own."""
    control = concurrency or Concurrency(limit=limit)
    pending = iter(items)
    running: dict[Future[_Timed[Result]], Item] = {}

    def timed(item: Item) -> _Timed[Result]:
        started = time.perf_counter()
        value = read(item)
        return _Timed(value, time.perf_counter() - started)

    with contextlib.ExitStack() as stack:
        executor = pool or stack.enter_context(
            ThreadPoolExecutor(max_workers=control.limit, thread_name_prefix=thread_name_prefix)
        )

        def fill() -> None:
            while len(running) < control.target:
                following = list(itertools.islice(pending, 1))
                if not following:
                    return
                running[executor.submit(timed, following[0])] = following[0]
                control.peak = max(control.peak, len(running))

        try:
            fill()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    item = running.pop(future)
                    timed_result = future.result()
                    control.observe_read(timed_result.seconds)
                    started = time.perf_counter()
                    yield item, timed_result.value
                    control.observe_work(time.perf_counter() - started)
                    fill()
        finally:
            for future in running:  # the consumer stopped early: start nothing new
                future.cancel()


class ReadPool:
    """Reader threads kept from one call to the next. A thread's first request pays for
    what it keeps per thread (the cache's Redis connection, for one), and a sweep batch
    that started its own threads paid that for every read in flight, every batch. Built
    on first use and again after a fork (a forked child has none of the parent's
    threads) or a new limit."""

    def __init__(self, thread_name_prefix: str) -> None:
        self.thread_name_prefix = thread_name_prefix
        self._pool: ThreadPoolExecutor | None = None
        self._limit = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def get(self, limit: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._limit != limit:
                # The old pool is not shut down: a call in another thread may still submit
                # to it; its threads end once nothing refers to it any more.
                self._pool = ThreadPoolExecutor(
                    max_workers=limit, thread_name_prefix=self.thread_name_prefix
                )
                self._limit = limit
            return self._pool

    def _forget(self) -> None:
        self._pool, self._limit, self._lock = None, 0, threading.Lock()
