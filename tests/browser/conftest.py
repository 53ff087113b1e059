"""A real ASGI server (uvicorn, websockets included) and Debian's chromium via Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import child_database_url, free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("KEELSON_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def asgi_server(transactional_db: None) -> Iterator[str]:
    """uvicorn serving Keelson on the test database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = child_database_url()
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "uvicorn.log").open("ab")
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


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh chromium page. Playwright's sync API runs an event loop in this thread for the
    test's duration, so Django's ORM must be told that sync calls here are fine; the loop is
    gone after the test, so no other test runs beside it."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: `make test` installs Debian's chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1366, "height": 800})
        yield context.new_page()
        context.close()
        browser.close()
