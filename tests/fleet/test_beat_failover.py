"""Beat without a single point of failure (fleet/beat.py): two real beat processes on the
test database and the test's broker vhost; one leads, the other takes over when the leader
is killed with SIGKILL, and no interval of the schedule is sent twice."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.celery import app
from fleet.beat import LEASE_KEY
from tests.support import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)

PERIOD = 10  # seconds between the probe's sends
ENTRY = "hub-beat-probe"
QUEUE = "beat-probe"


def lease_holder() -> int | None:
    """Process id of the beat holding the lease, from PostgreSQL's own tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
            " AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LEASE_KEY[0], LEASE_KEY[1]],
        )
        row = cursor.fetchone()
    return int(row[0].rsplit(":", 1)[1]) if row else None


def lease_sessions() -> set[int]:
    """Process ids of the beats that have a lease session (leader and followers)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'keelson-beat:%%'"
        )
        return {int(name.rsplit(":", 1)[1]) for (name,) in cursor.fetchall()}


@pytest.fixture
def probe_queue() -> Iterator[Any]:
    """The queue the probe entry is sent to, declared and emptied, on the test's vhost."""
    queue = app.amqp.queues[QUEUE]  # created like beat creates it when sending
    with app.connection_for_write() as conn:
        bound = queue(conn.default_channel)
        bound.declare()
        bound.purge()
        yield bound
        bound.purge()


@pytest.fixture
def beats(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.fleet.beat_settings",
            "DATABASE_URL": child_database_url(),
            "KEELSON_TEST_BEAT_PERIOD": str(PERIOD),
            "KEELSON_BEAT_TICK_SECONDS": "1",
        }
        log = (tmp_path / f"beat-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fleet", "beat", "-l", "info"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        started.append(process)
        return process

    start()
    start()
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_follower_takes_over_from_a_killed_leader_without_sending_an_interval_twice(
    probe_queue: Any, beats: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    received: list[tuple[float, str]] = []  # (receipt time, interval header)

    def drain() -> None:
        while (message := probe_queue.get(no_ack=True)) is not None:
            received.append((time.time(), message.headers["keelson_interval"]))

    def wait_for(what: str, condition: Any, seconds: float) -> float:
        deadline = time.monotonic() + seconds
        while not condition():
            drain()
            logs = "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("beat-*.log")))
            assert time.monotonic() < deadline, f"{what} within {seconds} s\n{logs}"
            time.sleep(0.1)
        return time.time()

    # given: the probe's first send due 1 s into an interval (of PERIOD seconds from the
    # epoch) far enough ahead for both beats to start (set before they start; beat keeps
    # the last run of an entry it finds)
    first_interval = math.ceil((time.time() + 25) / PERIOD) * PERIOD
    never_sent = datetime.fromtimestamp(first_interval + 1 - PERIOD, tz=UTC)
    every, _ = IntervalSchedule.objects.get_or_create(every=PERIOD, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name=ENTRY,
        task="fleet.tasks.fleet_ping_task",
        interval=every,
        args='["beat-probe"]',
        queue=QUEUE,
        last_run_at=never_sent,
    )
    pids = {process.pid for process in beats}
    wait_for("both beats started", lambda: lease_sessions() == pids, 20)
    leader = lease_holder()
    assert leader in pids
    (follower,) = pids - {leader}
    assert not received, "nothing is due before the first interval"

    # when: the leader sends the first interval, then is killed at once; it dies as if
    # between sending and saving the entry's last run (the follower finds it unsent)
    wait_for("the first send", lambda: bool(received), first_interval + 20 - time.time())
    os.kill(leader, signal.SIGKILL)
    killed = time.time()
    PeriodicTask.objects.filter(name=ENTRY).update(last_run_at=never_sent)

    # then: the follower holds the lease, and sends within 60 s of the kill
    took_over = wait_for("the follower leads", lambda: lease_holder() == follower, 60)
    sent_again = wait_for("a send by the follower", lambda: len(received) >= 2, 60)
    assert took_over - killed < 10, "the lease frees itself with the leader's session"
    assert sent_again - killed < 60
    # and no interval was sent twice: the follower's re-send of the first interval (due at
    # once by the stale last run) was refused; its first send is in the next interval
    time.sleep(2)
    drain()
    starts = [datetime.fromisoformat(header).timestamp() for _, header in received]
    assert starts[0] == first_interval
    assert len(set(starts)) == len(starts), received
    assert starts[1] == first_interval + PERIOD, received
    # the headers tell the truth: each message arrived inside the interval it names
    for (at, _), start in zip(received, starts, strict=True):
        assert start <= at < start + PERIOD + 1, received
    assert len(received) == 2, "one send per interval"
