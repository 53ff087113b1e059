"""Debian's chromium via Playwright (the ASGI server fixture is in tests/conftest.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("KEELSON_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's chromium. Playwright's sync API runs an event loop in this thread for the
    test's duration, so Django's ORM must be told that sync calls here are fine; the loop is
    gone after the test, so no other test runs beside it."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: `make test` installs Debian's chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        # Under Playwright's event loop the ORM's connection is another one than the test's
        # own before it (asgiref keys connections by context): one left from an earlier
        # browser test may point at a PostgreSQL that a chaos test has since restarted.
        for connection in connections.all(initialized_only=True):
            usable = connection.connection is None or connection.is_usable()
            if not connection.in_atomic_block and not usable:
                connection.close()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh page at a desktop size."""
    context = chromium.new_context(viewport={"width": 1366, "height": 800})
    yield context.new_page()
    context.close()


def as_worker(work: Callable[..., Any], **kwargs: Any) -> None:
    """Run `work` as a Celery worker would: in a thread of its own. The test's thread runs
    the browser driver's event loop, where asgiref refuses the sync publishing calls that
    the services make (async_to_sync) and the live update would never be sent."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work(**kwargs)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            connections.close_all()  # as a worker does after a task

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), f"{work.__name__} did not finish"
    if errors:
        raise errors[0]
