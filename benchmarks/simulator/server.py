"""N simulated clusters on one HTTPS port: a small HTTP/1.1 keep-alive server on asyncio
streams serving answers rendered once per cluster profile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from benchmarks.simulator.clusters import cluster_objects
from benchmarks.simulator.discovery import AGGREGATED
from benchmarks.simulator.shape import (
    CONNECTION_SOFT_CAP,
    DEGRADED_EVERY,
    INDEX_MARK,
    PROFILES,
    Variant,
)
from benchmarks.simulator.tls import TLSFiles, cluster_token

_MARK = INDEX_MARK.encode()


def _response(status: str, body: bytes, *, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + body


def _status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()


UNAUTHORIZED = _response("401 Unauthorized", _status_body(401, "Unauthorized", "Unauthorized"))
NOT_FOUND = _response("404 Not Found", _status_body(404, "NotFound", "not found"))
ACCESS_REVIEW = json.dumps(
    {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {}},
        "status": {"allowed": True},
    }
).encode()


@dataclass
class Stats:
    requests: int = 0
    probes: int = 0  # /version calls: one per probe
    unauthorized: int = 0
    resets: int = 0
    open_connections: int = 0
    max_connections: int = 0


class Simulator:
    """N simulated clusters on one HTTPS port; see the package docstring."""

    def __init__(self, clusters: int, tls: TLSFiles, *, host: str = "127.0.0.1") -> None:
        self.clusters = clusters
        self.tls = tls
        self.host = host
        self.port = 0
        self.stats = Stats()
        self.killed: dict[int, str] = {}  # index -> "reset" | "hang"
        self.latency = 0.0  # seconds added before every cluster's answer (a distant fleet)
        self._tokens: dict[int, bytes] = {}
        self._secret = tls.token_secret()
        self._bodies: dict[tuple[int, bool, Variant], dict[str, bytes]] = {}
        self._revived = asyncio.Event()
        self._server: asyncio.Server | None = None

    def token(self, index: int) -> bytes:
        token = self._tokens.get(index)
        if token is None:
            token = cluster_token(self._secret, index).encode()
            self._tokens[index] = token
        return token

    def bodies(self, index: int) -> dict[str, bytes]:
        """Cluster `index`'s answers by path, with INDEX_MARK still to replace (rendered
        once per profile and variant: a few hundred renderings for any fleet size)."""
        key = (index % PROFILES, index % DEGRADED_EVERY == 0, Variant.of(index))
        rendered = self._bodies.get(key)
        if rendered is None:
            objects = cluster_objects(*key)
            rendered = {path: json.dumps(body).encode() for path, body in objects.items()}
            self._bodies[key] = rendered
        return rendered

    async def start(self, port: int = 0) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        self._server = await asyncio.start_server(
            self._serve, self.host, port, ssl=context, backlog=4096, limit=2**16
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def kill(self, ids: list[int], mode: str = "reset") -> None:
        for index in ids:
            self.killed[index] = mode

    def revive(self, ids: list[int]) -> None:
        for index in ids:
            self.killed.pop(index, None)
        self._revived.set()
        self._revived = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats
        stats.open_connections += 1
        stats.max_connections = max(stats.max_connections, stats.open_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                request_line, _, rest = head.partition(b"\r\n")
                parts = request_line.split(b" ")
                if len(parts) != 3:
                    return
                method, target = parts[0], parts[1].decode("latin-1")
                authorization = b""
                aggregated = False
                length = 0
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    if lowered == b"authorization":
                        authorization = value.strip()
                    elif lowered == b"accept":
                        aggregated = b"as=APIGroupDiscoveryList" in value
                    elif lowered == b"content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                stats.requests += 1
                response = await self._route(method, target, authorization, writer, aggregated)
                if response is None:
                    return
                writer.write(response)
                if writer.transport.get_write_buffer_size() > 2**16:
                    await writer.drain()
                if b"Connection: close" in response[:200]:
                    await writer.drain()
                    return
        except (ConnectionError, ssl.SSLError, OSError):
            return
        finally:
            stats.open_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(
        self,
        method: bytes,
        target: str,
        authorization: bytes,
        writer: asyncio.StreamWriter,
        aggregated: bool = False,
    ) -> bytes | None:
        if target.startswith("/control/"):
            return self._control(target)
        if not target.startswith("/c/"):
            return NOT_FOUND
        prefix, _, path = target[3:].partition("/")
        try:
            index = int(prefix)
        except ValueError:
            return NOT_FOUND
        if not 0 <= index < self.clusters:
            return NOT_FOUND
        mode = self.killed.get(index)
        if mode is not None:
            self.stats.resets += 1
            if mode == "hang":
                while index in self.killed:
                    await self._revived.wait()
                return None
            writer.transport.abort()
            return None
        if self.latency:
            await asyncio.sleep(self.latency)
        if authorization != b"Bearer " + self.token(index):
            self.stats.unauthorized += 1
            return UNAUTHORIZED
        path = "/" + path.partition("?")[0].rstrip("/")
        if method == b"POST" and path.endswith("/selfsubjectaccessreviews"):
            return _response("201 Created", ACCESS_REVIEW)
        bodies = self.bodies(index)
        body = bodies.get(path)
        if aggregated and path in ("/api", "/apis"):
            body = bodies.get(path + AGGREGATED, body)
        if body is None:
            return NOT_FOUND
        if path == "/version":
            self.stats.probes += 1
        close = path == "/api/v1/events" and self.stats.open_connections > CONNECTION_SOFT_CAP
        return _response("200 OK", body.replace(_MARK, str(index).encode()), close=close)

    def _control(self, target: str) -> bytes:
        url = urlsplit(target)
        query = parse_qs(url.query)
        ids = [int(i) for i in ",".join(query.get("ids", [])).split(",") if i]
        if url.path == "/control/kill":
            self.kill(ids, query.get("mode", ["reset"])[0])
        elif url.path == "/control/revive":
            self.revive(ids)
        elif url.path == "/control/latency":
            self.latency = float(query.get("ms", ["0"])[0]) / 1000
        elif url.path != "/control/stats":
            return NOT_FOUND
        body = {**self.stats.__dict__, "killed": sorted(self.killed), "clusters": self.clusters}
        return _response("200 OK", json.dumps(body).encode())
