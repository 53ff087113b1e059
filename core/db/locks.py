"""PostgreSQL advisory locks, session-level: the one way Keelson says "one at a time".

A session-level lock is held by the database connection, not by a transaction, so it can
cover work that talks to clusters for minutes without holding a transaction open, and it
frees itself when the session ends: a worker killed with SIGKILL loses its connection and
its locks with it, so the redelivered task can take over (operations/dispatch.py).

Keys are one 64-bit integer, or a pair of 32-bit integers (a namespace and an id: the
same id locked for two purposes never collides). The batch pair `advisory_try_locks` /
`advisory_unlocks` takes many ids of one namespace in one statement each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections

Key = int | tuple[int, int]


def advisory_key(value: UUID | str) -> int:
    """A 64-bit key from a UUID (its first eight bytes, signed as PostgreSQL's bigint)."""
    return int.from_bytes(UUID(str(value)).bytes[:8], "big", signed=True)


def _args(key: Key) -> tuple[str, list[int]]:
    if isinstance(key, tuple):
        return "%s, %s", [key[0], key[1]]
    return "%s", [key]


@contextmanager
def advisory_lock(key: Key, *, wait: bool = False, using: str = DEFAULT_DB_ALIAS) -> Iterator[bool]:
    """Hold the lock for the block; yields whether it is held. Without `wait` a lock held
    elsewhere yields False at once (the caller skips the work); with `wait` it blocks
    until the lock is free and always yields True. Released on leaving the block, also
    on an exception."""
    placeholders, params = _args(key)
    function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}({placeholders})", params)
        row = cursor.fetchone()
    held = wait or bool(row and row[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({placeholders})", params)


def advisory_try_locks(
    namespace: int, ids: Sequence[int], *, using: str = DEFAULT_DB_ALIAS
) -> list[int]:
    """Try the lock of each (namespace, id) in one statement; returns the ids now held
    (by this session, until `advisory_unlocks`)."""
    if not ids:
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT id FROM unnest(%s::int[]) AS id WHERE pg_try_advisory_lock(%s, id)",
            [list(ids), namespace],
        )
        return [row[0] for row in cursor.fetchall()]


def advisory_unlocks(namespace: int, ids: Sequence[int], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Release locks taken with `advisory_try_locks`."""
    if ids:
        with connections[using].cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, id) FROM unnest(%s::int[]) AS id",
                [namespace, list(ids)],
            )
