"""This machine's RabbitMQ, PostgreSQL and Redis restarted under work: nothing is lost, and
workers and the web process recover by themselves (no restart of ours).

These tests stop and start the real services (as root, with the commands this machine's
services are started with) and always start them again, even when an assertion fails.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections, connection
from django.utils import timezone

from applications.rollout import rollout_start
from applications.services import application_create
from fleet.asgi import application
from operations.dispatch import operations_redispatch
from operations.models import Operation
from operations.services import operation_claim, operation_create, operation_update
from tests.clusters.helpers import wait_for
from tests.factories import make_team, make_user
from tests.fleet.test_websocket import _headers_for
from tests.placement.test_propagation import manifests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come back within {timeout:.0f}s")
        time.sleep(0.3)


def _rollouts(count: int) -> list[Operation]:
    """Rollouts of applications placed on no cluster: quick work for a real worker."""
    team = make_team()
    operations = []
    for index in range(count):
        application = application_create(
            actor=None,
            team=team,
            name=f"chaos-{team.pk}-{index}",
            namespace="ns",
            manifests=manifests(),
        )
        operations.append(rollout_start(application=application, actor=None))
    return operations


def _all_succeeded(operations: list[Operation]) -> bool:
    states = set(
        Operation.objects.filter(pk__in=[o.pk for o in operations]).values_list("state", flat=True)
    )
    return states == {"succeeded"}


def _sweep_until_done(operations: list[Operation], timeout: float = 90) -> None:
    """Run the beat sweeper (as if its grace period had passed) until every operation
    succeeded."""
    deadline = time.monotonic() + timeout
    while not _all_succeeded(operations):
        assert time.monotonic() < deadline, list(
            Operation.objects.filter(pk__in=[o.pk for o in operations]).values_list(
                "state", "error"
            )
        )
        operations_redispatch(now=timezone.now() + timedelta(minutes=5))
        time.sleep(2)


def test_rabbitmq_restarted_nothing_lost_and_the_worker_reconnects(
    celery_worker: subprocess.Popen[bytes],
) -> None:
    before = _rollouts(3)
    wait_for(lambda: _all_succeeded(before), timeout=60, what="rollouts before the outage")
    _run("rabbitmqctl", "stop_app")
    try:
        # while the broker is down, operations are still accepted (and stay pending)
        during = _rollouts(3)
        assert {o.state for o in during} == {"pending"}
    finally:
        _run("rabbitmqctl", "start_app")
        _run("rabbitmqctl", "await_startup")
    # the worker reconnects by itself, and the sweeper sends what could not be queued
    _sweep_until_done(during)
    assert celery_worker.poll() is None  # the same worker process, never restarted


def test_postgresql_restarted_nothing_lost_and_everyone_reconnects(
    celery_worker: subprocess.Popen[bytes],
) -> None:
    operations = _rollouts(4)
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart")
    # our own connection died with the server: Django reconnects on next use
    connection.close()
    _wait(lambda: _port_open(5432), "PostgreSQL")
    close_old_connections()
    _sweep_until_done(operations)
    assert celery_worker.poll() is None
    # and new work goes through the same worker
    again = _rollouts(1)
    wait_for(lambda: _all_succeeded(again), timeout=60, what="a rollout after the restart")


def _start_redis() -> None:
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    _run(
        "redis-server",
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/var/lib/redis",
        "--logfile",
        "/var/log/redis/ci.log",
    )
    _wait(lambda: _port_open(6379), "Redis")


def test_redis_restarted_progress_is_kept_and_live_updates_resume() -> None:
    user = make_user()
    operation = operation_create(kind="test.chaos", created_by=user)
    operation_claim(operation_id=operation.pk)
    headers = _headers_for(user)
    subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=30)
    try:
        _wait(lambda: not _port_open(6379), "Redis to stop", timeout=20)
        # work goes on while Redis is down: progress is stored, only the push is missed
        operation_update(operation_id=operation.pk, progress=70, message="during the outage")
        assert Operation.objects.get(pk=operation.pk).progress == 70
    finally:
        if not _port_open(6379):
            _start_redis()

    async def scenario() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(
            application, f"/ws/operations/{operation.pk}/", headers=headers
        )
        connected, _ = await communicator.connect()
        assert connected
        received = [await communicator.receive_json_from(timeout=10)]
        from channels.db import database_sync_to_async

        await database_sync_to_async(operation_update)(
            operation_id=operation.pk, progress=90, message="after the outage"
        )
        received.append(await communicator.receive_json_from(timeout=10))
        await communicator.disconnect()
        return received

    # a browser that (re)connects gets the snapshot with what happened meanwhile, then live
    # updates again, without any restart of ours
    snapshot, live = asyncio.run(scenario())
    assert snapshot["type"] == "snapshot"
    assert snapshot["data"]["progress"] == 70
    assert live["data"]["progress"] == 90
