"""`X-Forwarded-For` is believed only from the proxies in KEELSON_TRUSTED_PROXIES.

The web runs under uvicorn exactly as `make run` starts it (fleet/webserver.py's
`web_command`), serving a tiny app that answers with the client address it was handed,
which is what Django's REMOTE_ADDR (the audit log's address, the login limit's key)
becomes. uvicorn's own default trusts 127.0.0.1, so before the launcher passed its
options a local client could claim any address."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from fleet.webserver import trusted_proxy_options, web_command
from tests.conftest import REPO
from tests.support import free_port


def _get(port: int, headers: dict[str, str] | None = None) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers=headers or {})
        return connection.getresponse().read().decode()
    finally:
        connection.close()


@contextmanager
def _web(trusted: str) -> Iterator[int]:
    port = free_port()
    command = web_command(
        Path(sys.executable).parent,
        host="127.0.0.1",
        port=port,
        workers=1,
        env={"KEELSON_TRUSTED_PROXIES": trusted},
        app="tests.security.asgi_echo:app",
    )
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _get(port)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def _seen(port: int) -> str:
    return _get(port, {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})


def test_a_local_client_cannot_choose_its_address_by_default() -> None:
    # given the web as started with no trusted proxy configured
    with _web("") as port:
        # when a client on this machine claims another address and scheme
        seen = _seen(port)
    # then the app sees the connection's real address and scheme
    assert seen == "127.0.0.1 http"


def test_a_configured_proxy_is_believed() -> None:
    with _web("127.0.0.1/32, 10.0.0.0/8") as port:
        seen = _seen(port)
    assert seen == "203.0.113.9 https"


def test_a_bad_proxy_setting_stops_the_launch_with_its_name() -> None:
    with pytest.raises(SystemExit, match="KEELSON_TRUSTED_PROXIES: '\\*'"):
        trusted_proxy_options("10.0.0.1, *")


@pytest.mark.django_db
def test_the_agent_token_limit_counts_the_connection_not_a_claimed_address() -> None:
    # given the enroll endpoint's limit (10 a minute per address) fresh for 127.0.0.1
    cache.delete("throttle_agent-token_127.0.0.1")
    client = APIClient()
    # when one client guesses bootstrap tokens, claiming a new address each time
    answers = [
        client.post(
            "/api/v1/agent/enroll",
            {"bootstrap_token": f"guess-{n}"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n in range(12)
    ]
    # then the eleventh guess is refused: the claimed addresses did not reset the count
    assert answers[:10] == [401] * 10
    assert answers[10:] == [429, 429]
