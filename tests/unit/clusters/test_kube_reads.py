"""Adaptive read concurrency (kube/reads.py), with real threads and sleeps: slow
reads get many in flight, fast ones few, and a read that hangs holds up only itself."""

from __future__ import annotations

import os
import threading
import time

from kube.reads import Concurrency, ReadPool, adaptive_reads


class Gauge:
    """Reads in flight right now, and the most ever."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def test_target_follows_read_over_work_time() -> None:
    control = Concurrency(limit=32)
    assert control.target == 2  # nothing measured yet
    control.observe_read(0.5)
    control.observe_work(0.005)
    assert control.target == 32  # a 500 ms read over 5 ms of judging: as many as allowed
    slow = Concurrency(limit=32)
    slow.observe_read(0.004)
    slow.observe_work(0.005)
    assert slow.target == 2  # reads as fast as judging: one ahead
    tiny = Concurrency(limit=1, start=4)
    assert tiny.target == 1


def test_one_slow_sample_does_not_swing_the_average() -> None:
    control = Concurrency(limit=64)
    for _ in range(20):
        control.observe_read(0.010)
        control.observe_work(0.005)
    assert control.target == 3
    control.observe_read(1.0)  # one cluster timing out
    assert control.target < 64


def test_slow_reads_get_many_in_flight() -> None:
    gauge = Gauge()

    def read(item: int) -> int:
        with gauge:
            time.sleep(0.05)
        return item * 2

    control = Concurrency(limit=16)
    seen = []
    for item, value in adaptive_reads(range(80), read, limit=16, concurrency=control):
        time.sleep(0.002)  # the judging
        seen.append((item, value))
    assert sorted(seen) == [(i, i * 2) for i in range(80)]
    assert gauge.peak >= 8, gauge.peak
    assert control.peak <= 16


def test_fast_reads_stay_few() -> None:
    gauge = Gauge()

    def read(item: int) -> int:
        with gauge:
            time.sleep(0.001)
        return item

    control = Concurrency(limit=16)
    for _ in adaptive_reads(range(60), read, limit=16, concurrency=control):
        time.sleep(0.01)  # judging takes longer than reading
    assert gauge.peak <= 3, gauge.peak


def test_a_hanging_read_holds_up_only_itself() -> None:
    release = threading.Event()

    def read(item: int) -> int:
        if item == 0:
            release.wait(5)
        return item

    order = []
    for item, _ in adaptive_reads(range(10), read, limit=4):
        order.append(item)
        if len(order) == 9:
            release.set()
    assert order[-1] == 0
    assert sorted(order) == list(range(10))


def test_stopping_early_starts_nothing_more() -> None:
    started = []

    def read(item: int) -> int:
        started.append(item)
        time.sleep(0.01)
        return item

    for _ in adaptive_reads(range(100), read, limit=4):
        break
    time.sleep(0.05)
    assert len(started) <= 4


def test_a_read_pool_keeps_its_threads_from_one_call_to_the_next() -> None:
    pool = ReadPool("test-read")

    def read(item: int) -> str:
        time.sleep(0.002)
        return threading.current_thread().name

    first = {name for _, name in adaptive_reads(range(20), read, limit=4, pool=pool.get(4))}
    second = {name for _, name in adaptive_reads(range(20), read, limit=4, pool=pool.get(4))}
    assert first and second <= first  # the second call started no thread of its own
    assert all(name.startswith("test-read") for name in first)
    assert pool.get(4) is pool.get(4)
    assert pool.get(8) is not pool.get(4)  # a new limit: a new pool


def test_a_forked_child_builds_its_own_read_pool() -> None:
    pool = ReadPool("test-fork")
    parent = pool.get(2)
    assert parent.submit(lambda: 1).result() == 1
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads are not here
        try:
            fresh = pool.get(2)
            ok = fresh is not parent and fresh.submit(lambda: 2).result(timeout=5) == 2
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_new_limit_leaves_a_call_still_using_the_old_pool_working() -> None:
    pool = ReadPool("test-limit")
    old = pool.get(2)
    pool.get(3)  # another thread's batch saw a new limit
    assert old.submit(lambda: 7).result(timeout=5) == 7
