"""core/db/locks.py: the advisory locks, against a second PostgreSQL session standing in
for another worker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from core.db.locks import advisory_key, advisory_lock, advisory_try_locks, advisory_unlocks
from tests.support import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other() -> Iterator[psycopg2.extensions.cursor]:
    conn = psycopg2.connect(child_database_url())
    conn.autocommit = True
    with conn.cursor() as cursor:
        yield cursor
    conn.close()  # ends the session: whatever it held is released


def _free_elsewhere(other: psycopg2.extensions.cursor, *key: int) -> bool:
    """Whether the other session can take the lock now (it lets go at once if so)."""
    placeholders = ", ".join(["%s"] * len(key))
    other.execute(f"SELECT pg_try_advisory_lock({placeholders})", list(key))
    (taken,) = other.fetchone()
    if taken:
        other.execute(f"SELECT pg_advisory_unlock({placeholders})", list(key))
    return bool(taken)


def test_a_lock_is_held_for_the_block_and_released_after(
    other: psycopg2.extensions.cursor,
) -> None:
    with advisory_lock(42) as held:
        assert held
        assert not _free_elsewhere(other, 42)
    assert _free_elsewhere(other, 42)


def test_a_lock_held_elsewhere_yields_false_without_waiting(
    other: psycopg2.extensions.cursor,
) -> None:
    other.execute("SELECT pg_advisory_lock(%s, %s)", [7, 99])
    started = time.monotonic()
    with advisory_lock((7, 99)) as held:
        assert not held
    assert time.monotonic() - started < 1
    # the pair (7, 99) is not the 64-bit key 99: namespaces keep ids apart
    with advisory_lock(99) as held:
        assert held


def test_wait_blocks_until_the_other_session_lets_go(other: psycopg2.extensions.cursor) -> None:
    other.execute("SELECT pg_advisory_lock(%s)", [43])
    release = threading.Timer(0.5, lambda: other.execute("SELECT pg_advisory_unlock(43)"))
    release.start()
    started = time.monotonic()
    with advisory_lock(43, wait=True) as held:
        waited = time.monotonic() - started
        assert held and not _free_elsewhere(other, 43)
    release.join()
    assert waited >= 0.4
    assert _free_elsewhere(other, 43)


def test_an_exception_in_the_block_releases_the_lock(other: psycopg2.extensions.cursor) -> None:
    with pytest.raises(RuntimeError), advisory_lock(44):
        raise RuntimeError("the work failed")
    assert _free_elsewhere(other, 44)


def test_batch_locks_take_only_the_free_ids(other: psycopg2.extensions.cursor) -> None:
    other.execute("SELECT pg_advisory_lock(%s, %s)", [5, 2])
    assert advisory_try_locks(5, [1, 2, 3]) == [1, 3]
    assert not _free_elsewhere(other, 5, 1) and not _free_elsewhere(other, 5, 3)
    advisory_unlocks(5, [1, 3])
    assert _free_elsewhere(other, 5, 1) and _free_elsewhere(other, 5, 3)


def test_a_uuid_key_is_its_first_eight_bytes_as_a_signed_bigint() -> None:
    # ff.. as the first byte is negative in two's complement: PostgreSQL's bigint range
    value = uuid.UUID("ffffffff-ffff-ffff-0000-000000000000")
    assert advisory_key(value) == -1
    assert advisory_key("00000000-0000-0001-ffff-ffffffffffff") == 1
