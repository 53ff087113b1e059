"""The leader lease (core/db/lease.py): one holder at a time, free again when the holder's
session ends, and a holder whose session was cut learns it at its next renewal."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from core.db.lease import Lease

pytestmark = pytest.mark.django_db(transaction=True)

KEY = (4242, 7)


def test_one_holder_at_a_time_and_free_again_when_the_holder_releases() -> None:
    first, second = Lease(KEY, application_name="lease-a"), Lease(KEY, application_name="lease-b")
    try:
        assert first.acquire() is True
        assert second.acquire() is False
        assert first.renew() is True
        first.release()
        assert second.acquire() is True
        assert first.acquire() is False
    finally:
        first.release()
        second.release()


def test_a_holder_whose_session_is_ended_loses_the_lease_and_another_takes_it() -> None:
    holder, candidate = (
        Lease(KEY, application_name="lease-a"),
        Lease(KEY, application_name="lease-b"),
    )
    try:
        assert holder.acquire() is True
        # when: the server ends the holder's session (as when its machine vanishes)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'lease-a' AND datname = current_database()"
            )
            assert cursor.fetchone() == (True,)
        # then: the candidate can take it (once the server has ended the session), and
        # the former holder knows it lost it
        deadline = time.monotonic() + 5
        while not candidate.acquire():
            assert time.monotonic() < deadline, "the lock stayed held after its session ended"
            time.sleep(0.05)
        assert holder.renew() is False
        assert holder.held is False
        assert holder.acquire() is False
    finally:
        holder.release()
        candidate.release()
