"""One evaluation per cluster at a time: session-level PostgreSQL advisory locks
(core/db/locks.py; not held across a transaction: evaluation talks to clusters a while)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from core.db.locks import advisory_try_locks, advisory_unlocks

# Namespace of the advisory locks that keep one evaluation per cluster at a time.
LOCK_CLASS = 0x706F6C  # "pol"
# How long a batch waits for a cluster another session holds (a dying one, typically)
# before leaving the cluster to the next sweep.
BATCH_LOCK_WAIT = 15.0


@contextmanager
def cluster_locks(cluster_ids: list[int], *, wait: float = 0.0) -> Iterator[Iterator[list[int]]]:
    """Yields an iterator of groups of locked cluster ids: those free now, then, for up to
    `wait` seconds, those another worker held and let go (a worker killed
    mid-evaluation frees its locks once PostgreSQL ends its session, which can take a
    moment). Clusters still held after that are left to the next sweep."""
    held: list[int] = []

    def groups() -> Iterator[list[int]]:
        pending, deadline = list(cluster_ids), None
        while pending:
            got = advisory_try_locks(LOCK_CLASS, pending)
            held.extend(got)
            if got:
                yield got
            taken = set(got)
            pending = [pk for pk in pending if pk not in taken]
            if deadline is None:  # the wait starts once the free clusters are done
                deadline = time.monotonic() + wait
            if not pending or time.monotonic() >= deadline:
                return
            time.sleep(0.5)

    try:
        yield groups()
    finally:
        advisory_unlocks(LOCK_CLASS, held)
