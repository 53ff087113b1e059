"""Keep-alive GETs to member clusters on the standard library's HTTP client.

The reads a fleet makes in volume (policy lists, health probes) are small GETs to
thousands of API servers. Through the kubernetes client and urllib3 each request cost
about twice the CPU of `http.client` alone (pool manager, retry objects, response
wrappers), and a policy sweep makes a dozen per cluster. This transport keeps what
matters of that path and drops the rest:

- TLS: the same trust as the kubernetes client (the cluster's CA, or none when the
  cluster is registered with `insecure-skip-tls-verify`), hostname checked, client
  certificates from the same private files;
- one connection retry on a refused or dropped connection (urllib3's `Retry(connect=1)`);
  an idle connection the server closed, or idle for over a minute, is not reused, and one
  that fails anyway (but for a timeout) is replaced once, as GETs are idempotent;
- the (connect, read) timeouts of every other call;
- the egress check at every new connection, to the address it checked (egress.py);
- errors raised as the kubernetes client raises them (`ApiException` with the status
  for an HTTP error; `ssl`, `socket` and timeout errors otherwise), so `classify` words
  them the same;
- response headers split by hand rather than by the `email` parser `http.client` uses,
  which cost a quarter of a request's CPU (`_Response`).

Connections are shared per endpoint and TLS identity, like the urllib3 pools
(`_shared_transport`): clusters behind one gateway reuse them, each request carrying its
own cluster's bearer token.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from kubernetes.client.exceptions import ApiException

from kube import egress

# Idle connections kept per endpoint (as ENDPOINT_CONNECTIONS for urllib3's pools); the
# process keeps at most KEELSON_KUBE_IDLE_CONNECTIONS over all endpoints (`_Ledger`).
MAX_IDLE = 32
# A connection idle longer is closed, not reused: load balancers and NAT drop idle flows
# silently (AWS NLB after 350 s, GCP after 600 s), and a request on such a connection waits
# for the read timeout instead of failing fast. Collection reuses its connections every
# interval; a policy sweep every 10 minutes reconnects.
MAX_IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes


class Endpoint:
    """Keep-alive connections to one API server endpoint with one TLS identity."""

    def __init__(
        self,
        server: str,
        *,
        tls: Callable[[], ssl.SSLContext] | None,
        timeout: tuple[float, float],
    ) -> None:
        parts = urlsplit(server)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = tls
        self._context: ssl.SSLContext | None = None
        self.timeout = timeout
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []  # (idle since, ...)
        self._lock = threading.Lock()
        self.clock = time.monotonic

    def _connect(self) -> http.client.HTTPConnection:
        connect, read = self.timeout
        connection: http.client.HTTPConnection
        if self.scheme == "https":
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=connect, context=self.context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=connect)
        connection.response_class = _Response
        # The socket goes to an address the egress policy allows, checked now (DNS
        # rebinding); TLS still sends and verifies the name.
        connection._create_connection = _checked_connection  # type: ignore[attr-defined]
        try:
            connection.connect()
        except (ConnectionRefusedError, ConnectionResetError):  # urllib3 retried these once
            connection.close()
            connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(read)
        return connection

    def context(self) -> ssl.SSLContext | None:
        """Built on first use: a CA that does not load fails the requests, as a TLS error
        (the kubernetes client too loads it only when it connects)."""
        if self._context is None and self._tls is not None:
            context = self._tls()
            with self._lock:
                self._context = self._context or context
        return self._context

    def _take(self) -> http.client.HTTPConnection | None:
        """The most recently used idle connection still worth reusing, if any."""
        expired: list[http.client.HTTPConnection] = []
        found = None
        with self._lock:
            horizon = self.clock() - MAX_IDLE_SECONDS
            while self._idle and found is None:
                since, connection = self._idle.pop()
                if since < horizon or _dropped(connection):
                    expired.append(connection)
                else:
                    found = connection
            if self._idle and self._idle[0][0] < horizon:  # older ones expired too
                expired += [c for since, c in self._idle if since < horizon]
                self._idle = [(since, c) for since, c in self._idle if since >= horizon]
        _ledger.remove([*expired, *([found] if found is not None else [])])
        for connection in expired:
            connection.close()
        return found

    def _give(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            kept = len(self._idle) < MAX_IDLE
            if kept:
                self._idle.append((self.clock(), connection))
        if not kept:
            connection.close()
            return
        for endpoint, oldest in _ledger.add(self, connection):
            endpoint._forget(oldest)

    def _forget(self, connection: http.client.HTTPConnection) -> None:
        """Close `connection` if it is still idle here (another thread may have taken it
        since the ledger let it go)."""
        with self._lock:
            before = len(self._idle)
            self._idle = [(since, c) for since, c in self._idle if c is not connection]
            idle = len(self._idle) < before
        if idle:
            connection.close()

    def idle(self) -> int:
        return len(self._idle)

    def get(self, target: str, headers: dict[str, str]) -> Answer:
        """GET `target` (path and query) and read the whole answer."""
        reused = self._take()
        connection = reused or self._connect()
        try:
            try:
                return self._exchange(connection, target, headers)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                if reused is None or isinstance(error, TimeoutError):
                    raise
                connection = self._connect()  # the server closed an idle connection
                return self._exchange(connection, target, headers)
        except BaseException:
            connection.close()
            raise

    def _exchange(
        self, connection: http.client.HTTPConnection, target: str, headers: dict[str, str]
    ) -> Answer:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.will_close:
            connection.close()
        else:
            self._give(connection)
        return Answer(response.status, response.reason, body)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        _ledger.remove([connection for _, connection in idle])
        for _, connection in idle:
            connection.close()


class _Ledger:
    """Every idle connection of the process, oldest first. With one endpoint per cluster a
    worker that read 10,000 clusters would otherwise keep a socket to each until it read
    that cluster again (and a container's default limit is 1,024 descriptors): past
    `KEELSON_KUBE_IDLE_CONNECTIONS`, or MAX_IDLE_SECONDS, the oldest are closed, whichever
    endpoint keeps them."""

    def __init__(self) -> None:
        self._entries: OrderedDict[int, tuple[float, Endpoint, http.client.HTTPConnection]]
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def add(
        self, endpoint: Endpoint, connection: http.client.HTTPConnection
    ) -> list[tuple[Endpoint, http.client.HTTPConnection]]:
        """Record a connection gone idle; returns those to let go of."""
        limit = max(1, int(getattr(settings, "KEELSON_KUBE_IDLE_CONNECTIONS", 512)))
        now = time.monotonic()
        evicted = []
        with self._lock:
            self._entries[id(connection)] = (now, endpoint, connection)
            entries = self._entries
            while entries and (
                len(entries) > limit or next(iter(entries.values()))[0] < now - MAX_IDLE_SECONDS
            ):
                _, (_, owner, oldest) = entries.popitem(last=False)
                evicted.append((owner, oldest))
        return evicted

    def remove(self, connections: list[http.client.HTTPConnection]) -> None:
        if connections:
            with self._lock:
                for connection in connections:
                    self._entries.pop(id(connection), None)

    def __len__(self) -> int:
        return len(self._entries)


_ledger = _Ledger()


class _Response(http.client.HTTPResponse):
    """`http.client`'s response with its headers split by hand: `HTTPResponse.begin`
    hands them to the `email` package's parser, a quarter of a small GET's CPU. The same
    limits (line length, header count) and the same framing rules (chunked, length,
    connection close) apply."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _read_header_lines(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(self.fp)
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


_MAX_LINE = 65536  # as http.client
_MAX_HEADERS = 100


def _read_header_lines(fp: Any) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def parse_headers(fp: Any) -> http.client.HTTPMessage:
    """The header block as `http.client.parse_headers` returns it: repeated names kept,
    names matched case-insensitively; an obsolete folded line is joined to its value with
    a space (RFC 9112 5.2) where the `email` parser keeps the line break, and a line with
    no colon is skipped where the `email` parser drops every header after it."""
    message = http.client.HTTPMessage()
    name, value = "", ""
    for raw in _read_header_lines(fp):
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if line[:1] in (" ", "\t"):  # obsolete line folding: continues the last value
            value += " " + line.strip()
            continue
        if name:
            message[name] = value
        name, colon, value = line.partition(":")
        name, value = (name.strip(), value.lstrip(" \t")) if colon else ("", "")
    if name:
        message[name] = value
    return message


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle connection the server closed (or sent anything on) reads as ready: it
    cannot carry a request. What urllib3 checks before reusing a pooled connection."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()  # not select(): a worker holds descriptors past FD_SETSIZE
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


def _checked_connection(
    address: tuple[str, int], timeout: Any, source_address: tuple[str, int] | None = None
) -> Any:
    return egress.open_connection(address[0], address[1], timeout, source_address=source_address)


def tls_context(
    *, ca_data: str, insecure: bool, cert_file: str = "", key_file: str = ""
) -> ssl.SSLContext:
    """The trust the kubernetes client applies: the cluster's CA (the system's if none),
    or no verification for a cluster registered as insecure."""
    context = ssl.create_default_context(cadata=ca_data or None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def get(endpoint: Endpoint, prefix: str, path: str, headers: dict[str, str]) -> bytes:
    """GET `prefix + path` and return the body; raises ApiException for a non-2xx answer
    (without its body: a cluster's error text never reaches a message)."""
    answer = endpoint.get(prefix + path, headers)
    if not 200 <= answer.status <= 299:
        raise ApiException(status=answer.status, reason=answer.reason)
    return answer.body


def server_prefix(server: str) -> str:
    """The path an API server is served under (a gateway's `/c/1`), without the slash."""
    return urlsplit(server).path.rstrip("/")
