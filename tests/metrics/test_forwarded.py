"""The allow-list checks the client address the web server resolved: X-Forwarded-For counts
only from KEELSON_TRUSTED_PROXIES (Keelson under uvicorn as `make run` starts it)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleet.webserver import web_command
from tests.conftest import REPO
from tests.support import child_database_url, free_port

pytestmark = pytest.mark.django_db(transaction=True)
FORWARDED = {"X-Forwarded-For": "203.0.113.9"}


def _status(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


@contextmanager
def _keelson(trusted: str) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "KEELSON_TRUSTED_PROXIES": trusted,
        "KEELSON_METRICS_ALLOWED_NETWORKS": "203.0.113.0/24",
        "KEELSON_METRICS_TOKEN": "",
    }
    command = web_command(
        Path(sys.executable).parent, host="127.0.0.1", port=port, workers=1, env=env
    )
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90  # a loaded 2-core machine starts uvicorn slowly
        while True:
            try:
                _status(port, "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_forwarded_address_ignored_without_trusted_proxy() -> None:
    with _keelson("") as port:
        assert _status(port, "/metrics", FORWARDED) == 403
        assert _status(port, "/metrics") == 403


def test_forwarded_address_of_a_trusted_proxy_is_checked() -> None:
    with _keelson("127.0.0.1") as port:
        assert _status(port, "/metrics", FORWARDED) == 200
        assert _status(port, "/metrics", {"X-Forwarded-For": "198.51.100.1"}) == 403
