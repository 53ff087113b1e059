"""`X-Forwarded-For` is believed only from the proxies in KEELSON_TRUSTED_PROXIES.

The web runs under uvicorn exactly as `make run` starts it (fleet/launcher.py's
`web_command`), serving a tiny app that answers with the client address it was handed,
which is what Django's REMOTE_ADDR (the audit log's address, the login limit's key)
becomes. uvicorn's own default trusts 127.0.0.1, so before the launcher passed its
options a local client could claim any address."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleet.launcher import trusted_proxy_options, web_command
from tests.conftest import REPO
from tests.support import free_port


@contextmanager
def _web(trusted: str) -> Iterator[str]:
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
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _seen(url: str) -> str:
    request = urllib.request.Request(
        url, headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def test_a_local_client_cannot_choose_its_address_by_default() -> None:
    # given the web as started with no trusted proxy configured
    with _web("") as url:
        # when a client on this machine claims another address and scheme
        seen = _seen(url)
    # then the app sees the connection's real address and scheme
    assert seen == "127.0.0.1 http"


def test_a_configured_proxy_is_believed() -> None:
    with _web("127.0.0.1/32, 10.0.0.0/8") as url:
        seen = _seen(url)
    assert seen == "203.0.113.9 https"


def test_a_bad_proxy_setting_stops_the_launch_with_its_name() -> None:
    with pytest.raises(SystemExit, match="KEELSON_TRUSTED_PROXIES: '\\*'"):
        trusted_proxy_options("10.0.0.1, *")
