"""A tiny ASGI app that answers with the client address the server handed it (for the
forwarded-headers test, run under uvicorn as the launcher starts the web)."""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    client = scope.get("client") or ("", 0)
    body = f"{client[0]} {scope.get('scheme', '')}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
