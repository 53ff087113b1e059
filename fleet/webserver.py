"""The web process's command line (uvicorn), as `make run` starts it."""

from __future__ import annotations

import ipaddress
from pathlib import Path


def trusted_proxy_options(value: str) -> list[str]:
    """uvicorn's options for `X-Forwarded-For`/`-Proto` from `KEELSON_TRUSTED_PROXIES`
    (comma-separated addresses or networks of the reverse proxies in front of the web).

    uvicorn believes these headers from 127.0.0.1 unless told otherwise, so any local
    process (or a proxy forwarding the client's own header) could pick the client address
    the audit log records and the login limit counts. With no trusted proxy, the headers
    are ignored; with some, only a connection from one of them may set them."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SystemExit(
                f"KEELSON_TRUSTED_PROXIES: {entry!r} is not an IP address or network."
            ) from None
    if not entries:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", ",".join(entries)]


def web_command(
    bin_dir: Path,
    *,
    host: str,
    port: int,
    workers: int,
    env: dict[str, str],
    app: str = "fleet.asgi:application",
) -> list[str]:
    """The uvicorn command line of the web process."""
    return [
        str(bin_dir / "uvicorn"),
        app,
        "--host",
        host,
        "--port",
        str(port),
        "--lifespan",
        "off",
        # a websocket left hanging does not hold a restart up for long
        "--timeout-graceful-shutdown",
        "10",
        "--workers",
        str(workers),
        *trusted_proxy_options(env.get("KEELSON_TRUSTED_PROXIES", "")),
    ]
