"""Metrics kept in each web process: request latency by view and open websockets.

They live in prometheus-client's default registry. With several web worker processes,
set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by them (prometheus-client's
multiprocess mode): each process then writes its figures there and `/metrics` sums them,
whichever process answers the scrape.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from prometheus_client import Gauge, Histogram

REQUEST_SECONDS = Histogram(
    "keelson_http_request_duration_seconds",
    "Time to answer an HTTP request, by the resolved URL name (not the path).",
    ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBSOCKETS = Gauge(
    "keelson_websocket_connections",
    "Websocket connections open now.",
    multiprocess_mode="livesum",
)

# Anything else a client sends is one label value: the method is the client's choice.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
UNRESOLVED = "<unresolved>"


def view_label(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None and match.view_name else UNRESOLVED


def request_latency_middleware(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    """Observe every request's duration under its URL name (a path would make a series
    per cluster name, id and typo)."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = get_response(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_SECONDS.labels(view_label(request), method).observe(time.perf_counter() - started)
        return response

    return middleware


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def count_websockets(app: ASGIApp) -> ASGIApp:
    """Wrap the websocket application: a connection counts from its accept to its end."""

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal accepted
            await send(message)
            if message.get("type") == "websocket.accept" and not accepted:
                accepted = True
                WEBSOCKETS.inc()

        try:
            await app(scope, receive, counting_send)
        finally:
            if accepted:
                WEBSOCKETS.dec()

    return counted
