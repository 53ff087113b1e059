"""One evaluation per cluster at a time: session-level PostgreSQL advisory locks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

# Namespace of the advisory locks that keep one evaluation per cluster at a time.
LOCK_CLASS = 0x706F6C  # "pol"
# How long a batch waits for a cluster another session holds (a dying one, typically)
# before leaving the cluster to the next sweep.
BATCH_LOCK_WAIT = 15.0


def _try_locks(cluster_ids: list[int]) -> list[int]:
    """Session-level advisory locks (not held across a transaction: evaluation talks to
    clusters for a while) on every cluster free now, in one statement; returns those."""
    if not cluster_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM unnest(%s::int[]) AS id WHERE pg_try_advisory_lock(%s, id)",
            [cluster_ids, LOCK_CLASS],
        )
        return [row[0] for row in cursor.fetchall()]


def _unlock(cluster_ids: list[int]) -> None:
    if cluster_ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, id) FROM unnest(%s::int[]) AS id",
                [LOCK_CLASS, cluster_ids],
            )


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
            got = _try_locks(pending)
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
        _unlock(held)
