"""Content-Security-Policy with a per-response nonce, and Permissions-Policy.

Scripts run only from this origin or with the response's nonce (`{{ csp_nonce }}` in a
template's inline `<script nonce=...>`): markup injected into a page cannot run script,
even if some template forgot to escape it. Styles keep 'unsafe-inline' (htmx inserts its
indicator style; style attributes cannot run code). Referrer-Policy comes from Django's
SecurityMiddleware (SECURE_REFERRER_POLICY). `connect-src 'self'` covers the same-origin
websockets (CSP Level 3 matches ws:/wss: to 'self').
"""

from __future__ import annotations

import secrets
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
        "browsing-topics",
    )
)


def policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _set_headers(response: HttpResponse, nonce: str) -> HttpResponse:
    response.headers.setdefault("Content-Security-Policy", policy(nonce))
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    return response


@sync_and_async_middleware
def security_headers_middleware(get_response: Any) -> Any:
    """Sets a fresh nonce on the request (`request.csp_nonce`) and the headers on the
    response, unless a view set its own. Sync and async alike: under ASGI an async view
    is not pushed through a thread for this."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            nonce = secrets.token_urlsafe(16)
            request.csp_nonce = nonce  # type: ignore[attr-defined]
            return _set_headers(await get_response(request), nonce)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:  # type: ignore[misc]
            nonce = secrets.token_urlsafe(16)
            request.csp_nonce = nonce  # type: ignore[attr-defined]
            return _set_headers(get_response(request), nonce)

    return middleware


def nonce(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: `{{ csp_nonce }}`."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
