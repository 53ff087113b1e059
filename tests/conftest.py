"""Shared fixtures. Tests talk to the real services of this machine; one that is down
stops the run at once with a message saying which (no test is skipped for it). A run of
the unit lane alone (`tests/unit/`, `make test-unit`) needs no service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.support import child_database_url, free_port

if TYPE_CHECKING:
    from accounts.models import Team
    from tests.factories import Member

REPO = Path(__file__).resolve().parent.parent


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host.startswith("/"):
        return True  # a Unix socket: psycopg will tell
    try:
        with socket.create_connection((host, parts.port or default_port), timeout=3):
            return True
    except OSError:
        return False


UNIT = REPO / "tests" / "unit"


def needs_services(items: list[pytest.Item]) -> bool:
    """Whether any collected test lies outside the unit lane (`tests/unit/`: pure logic,
    run by `make test-unit` with every service unreachable)."""
    return any(not Path(item.path).is_relative_to(UNIT) for item in items)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not needs_services(items):
        return
    services = {
        "PostgreSQL (DATABASE_URL)": (os.environ["DATABASE_URL"], 5432),
        "Redis (REDIS_URL)": (os.environ["REDIS_URL"], 6379),
        "RabbitMQ (CELERY_BROKER_URL)": (os.environ["CELERY_BROKER_URL"], 5672),
    }
    down = [name for name, (url, port) in services.items() if not _reachable(url, port)]
    if down:
        pytest.exit(
            "required services are down: " + ", ".join(down) + ". Start them (README, "
            "'Running the tests') — tests never skip for a missing service.",
            returncode=3,
        )


def start_worker(name: str | None = None) -> subprocess.Popen[bytes]:
    """A real Celery worker process on the test broker and database, answering pings."""
    from core.celery import QUEUES
    from core.celery import app as celery_app

    node = name or f"test-{os.getpid()}"
    env = dict(os.environ)
    env["DATABASE_URL"] = child_database_url()
    (REPO / "var").mkdir(exist_ok=True)
    with (REPO / "var" / "test-worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "fleet",
                "worker",
                "-l",
                "info",
                "-Q",
                ",".join(QUEUES),
                "-P",
                "solo",
                "-n",
                f"{node}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the Celery worker exited at start; see var/test-worker.log"
        if celery_app.control.ping(destination=[f"{node}@{socket.gethostname()}"], timeout=1):
            return worker
    worker.kill()
    pytest.fail("the Celery worker did not answer a ping within 60 s")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on the test broker, using the test database."""
    from core.celery import app as celery_app

    celery_app.control.purge()
    worker = start_worker()
    try:
        yield worker
    finally:
        stop_worker(worker)


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One etcd for the session's real kube-apiservers (binaries built on first use)."""
    from localkube import LocalKubeEnv, find_binaries

    env = LocalKubeEnv(
        tmp_path_factory.mktemp("localkube"),
        binaries=find_binaries(build=True),
        node_monitor_grace_period="16s",
    )
    env.start()
    yield env
    env.stop()


@pytest.fixture(scope="session")
def kube_cluster(kube_env: object) -> object:
    """A real cluster (API server, controller-manager, scheduler, two simulated nodes)."""
    from localkube import LocalKubeEnv

    assert isinstance(kube_env, LocalKubeEnv)
    return kube_env.start_cluster("member-1")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Counters in Redis (login failures, aggregated anonymous refusals, throttles) outlive
    a test's rolled-back database: each test starts without them."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _usable_connection() -> None:
    """Chaos tests restart PostgreSQL: a test that runs later outside a transaction must not
    inherit this process's connection to the old server (Django checks it only at the start
    of a request)."""
    from django.db import connection

    if (
        connection.connection is not None
        and not connection.in_atomic_block
        and not connection.is_usable()
    ):
        connection.close()


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Executor threads of async code keep their own connections; end them before the test
    database is dropped."""
    yield
    from django.db import connection

    if not str(connection.settings_dict["NAME"]).startswith("test_"):
        return  # no test touched the database: nothing was created
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def asgi_server(transactional_db: None) -> Iterator[str]:
    """uvicorn serving Keelson on the test database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = child_database_url()
    port = free_port()
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    log = (REPO / "test-artifacts" / "uvicorn.log").open("ab")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fleet.asgi:application",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--lifespan",
            "off",
            "--timeout-graceful-shutdown",
            "10",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            assert server.poll() is None, "uvicorn exited; see test-artifacts/uvicorn.log"
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):  # noqa: S310
                    break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


# --- members of one team: `owner` (admin), `operator`, `viewer`, and an `outsider` -----------
# Each is a `Member` (user, `api` client, `page` client). They belong to `team`: a module that
# needs another team name defines its own `team` fixture and these follow it.


@pytest.fixture
def team(db: None) -> Team:
    from tests.factories import make_team

    return make_team(name="payments")


@pytest.fixture
def owner(team: Team) -> Member:
    """The team's admin (every action of the team)."""
    from accounts.choices import Role
    from tests.factories import member_of

    return member_of(team, Role.ADMIN)


@pytest.fixture
def operator(team: Team) -> Member:
    from accounts.choices import Role
    from tests.factories import member_of

    return member_of(team, Role.OPERATOR)


@pytest.fixture
def viewer(team: Team) -> Member:
    from accounts.choices import Role
    from tests.factories import member_of

    return member_of(team, Role.VIEWER)


@pytest.fixture
def outsider(db: None) -> Member:
    """An admin of another team: the most a user can hold that must not reach `team`."""
    from accounts.choices import Role
    from tests.factories import make_team, member_of

    return member_of(make_team(name="elsewhere"), Role.ADMIN)
