"""The web's request threads (fleet/request_threads.py): a bounded set of threads that keep
their PostgreSQL connection between requests, where Django's ASGI handler alone starts a
thread, and so a connection, per request."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import close_old_connections, connection, connections

from fleet.request_threads import RequestThreads

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(kind: str = "http") -> dict[str, Any]:
    return {"type": kind, "path": "/", "method": "GET", "headers": []}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


def _backend_pid() -> tuple[int, int]:
    """What a request's view does: use the connection, then Django's request_finished."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    close_old_connections()
    return threading.get_ident(), pid


class _Recorder:
    """An ASGI app whose request does its database work in a thread-sensitive call."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.seen.append(await sync_to_async(_backend_pid)())


class _PerRequestContext:
    """What Django's ASGIHandler does without the pool: a context (a thread) per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async with ThreadSensitiveContext():
            await self.app(scope, receive, send)


@pytest.fixture
def keep_connections() -> Any:
    """The web's setting (fleet/asgi.py): connections live on between requests."""
    settings_dict = connections.settings["default"]
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = 300
    yield
    settings_dict["CONN_MAX_AGE"] = before


def _run(app: Any, requests: int) -> None:
    async def scenario() -> None:
        for _ in range(requests):
            await app(_scope(), _receive, _send)

    asyncio.run(scenario())


def test_sequential_requests_share_one_thread_and_one_database_connection(
    keep_connections: None,
) -> None:
    recorder = _Recorder()
    _run(RequestThreads(recorder, size=4), 5)
    threads = {thread for thread, _ in recorder.seen}
    pids = {pid for _, pid in recorder.seen}
    # The thread a request gives back is the next request's (last in, first out).
    assert len(recorder.seen) == 5
    assert len(threads) == 1
    assert len(pids) == 1


def test_without_the_pool_each_request_opens_a_connection(keep_connections: None) -> None:
    recorder = _Recorder()
    _run(_PerRequestContext(recorder), 3)
    assert len({pid for _, pid in recorder.seen}) == 3


def test_concurrent_requests_beyond_the_pool_wait_for_a_thread() -> None:
    running = 0
    most = 0
    threads: set[int] = set()
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        time.sleep(0.05)
        with lock:
            running -= 1

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await sync_to_async(work)()

    pool = RequestThreads(app, size=2)

    async def scenario() -> None:
        await asyncio.gather(*(pool(_scope(), _receive, _send) for _ in range(6)))

    asyncio.run(scenario())
    assert most == 2  # never more than the pool, and the pool is used in parallel
    assert len(threads) == 2


def test_other_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(RequestThreads(app, size=1)(_scope("websocket"), _receive, _send))
    assert seen == ["websocket"]


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        RequestThreads(lambda *a: None, size=0)
