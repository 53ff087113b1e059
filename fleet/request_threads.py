"""A fixed set of threads for the synchronous part of HTTP requests, each keeping its
database connection between requests.

Django's ASGI handler runs each request's views in a thread of its own, so a database
connection cannot outlive its request: every request paid for a new PostgreSQL connection
(about 6 ms on loopback, more than a whole warm API call). Here each request borrows one of
`KEELSON_WEB_THREADS` single-thread executors for its thread-sensitive work (asgiref's
`ThreadSensitiveContext(executor=...)`), as a threaded WSGI server lends a thread; the
thread's connection lives on under `DATABASE_CONN_MAX_AGE` and is checked before reuse
(`CONN_HEALTH_CHECKS`). A request beyond the pool waits for a free thread instead of
starting one more thread and connection: the number of connections a web process opens is
bounded.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

Scope = dict[str, Any]


class RequestThreads:
    """ASGI middleware: HTTP requests run on the pool's threads; other scopes pass through."""

    def __init__(self, app: Any, *, size: int) -> None:
        if size < 1:
            raise ValueError("the pool needs at least one thread")
        self.app = app
        self.size = size
        self._idle: asyncio.Queue[ThreadPoolExecutor] | None = None

    def _pool(self) -> asyncio.Queue[ThreadPoolExecutor]:
        # Made on first use: the queue belongs to the server's event loop.
        if self._idle is None:
            # Last in, first out: under light load requests keep to the few threads (and
            # connections) used last.
            idle: asyncio.Queue[ThreadPoolExecutor] = asyncio.LifoQueue()
            for index in range(self.size):
                idle.put_nowait(
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"http-{index}")
                )
            self._idle = idle
        return self._idle

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        idle = self._pool()
        executor = await idle.get()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.app(scope, receive, send)
        finally:
            idle.put_nowait(executor)
