"""The web server (fleet/web.py) as `make run` starts it: worker processes on their own
SO_REUSEPORT sockets, so a burst of keep-alive connections is spread across them; a dead
worker is replaced; the workers end with the supervisor, even when it is killed."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support import child_database_url, free_port

REPO = Path(__file__).resolve().parent.parent.parent


def _start(port: int, workers: int = 2) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["DATABASE_URL"] = child_database_url()
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    log = (REPO / "test-artifacts" / "web.log").open("ab")
    command = [sys.executable, "-m", "fleet.web", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _workers(
    web: subprocess.Popen[bytes], count: int, timeout: float = 30, gone: int = 0
) -> list[int]:
    """The supervisor's worker pids, once `count` of them listen (and `gone` is not one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert web.poll() is None, "fleet.web exited; see test-artifacts/web.log"
        pids = [child.pid for child in psutil.Process(web.pid).children()]
        listening = [pid for pid in pids if _listens(pid)]
        if len(listening) == count and gone not in pids:
            return listening
        time.sleep(0.2)
    raise AssertionError(f"{count} workers did not start listening within {timeout} s")


def _listens(pid: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections())
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def web() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    server = _start(port)
    try:
        _workers(server, 2)
        yield server, port
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def test_a_burst_of_keep_alive_connections_is_spread_across_workers(
    web: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = web
    pids = _workers(server, 2)
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(32)]
    for connection in connections:  # opened together, as a proxy's pool opens them
        connection.connect()
    for connection in connections:
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        assert reply.status == 200
        reply.read()
    held = {
        pid: sum(
            1
            for c in psutil.Process(pid).net_connections()
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
        for pid in pids
    }
    for connection in connections:
        connection.close()
    assert sum(held.values()) == 32
    # hashed by address: fewer than 4 of 32 on one worker about once in 400,000 runs
    assert min(held.values()) >= 4, held


def test_a_dead_worker_is_replaced(web: tuple[subprocess.Popen[bytes], int]) -> None:
    server, port = web
    victim, survivor = _workers(server, 2)
    os.kill(victim, signal.SIGKILL)
    replaced = _workers(server, 2, gone=victim)
    assert survivor in replaced
    assert _healthy(port)


def test_workers_end_with_a_killed_supervisor() -> None:
    port = free_port()
    server = _start(port)
    pids = _workers(server, 2)
    server.kill()
    server.wait(timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(psutil.pid_exists(pid) for pid in pids):
        for pid in pids:  # reap nothing: they are the killed supervisor's orphans
            if psutil.pid_exists(pid) and psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                pids = [p for p in pids if p != pid]
        time.sleep(0.2)
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    assert not _healthy(port)


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = _start(port)
        assert server.wait(timeout=30) == 1
    log = (REPO / "test-artifacts" / "web.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log
