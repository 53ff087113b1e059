"""The lean GET transport (kube/http.py) over real sockets: keep-alive reuse,
a server closing idle connections, HTTP errors without their body, a gateway's path
prefix, and a server that never answers. TLS, tokens and client certificates are
covered against real kube-apiservers by the collection and policy tests, which read
through it."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmarks.simulator import ensure_tls
from kube import http as kube_http
from kube.client import ConnectionSpec, build_api_client, classify, get_json


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, int]] = []  # (path, authorization, client port)
    close_after_answer = False

    def do_GET(self) -> None:
        type(self).seen.append(
            (self.path, self.headers.get("Authorization", ""), self.client_address[1])
        )
        if self.path.endswith("/missing"):
            body = b'{"kind":"Status","message":"secret-ish server text"}'
            self.send_response(404)
        elif self.path.endswith("/chunked"):  # as kube-apiserver streams a large list
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Audit-Id", "one")
            self.send_header("audit-id", "two")
            self.end_headers()
            for part in (b'{"items": [', b'{"n": 1}, ', b'{"n": 2}', b"]}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        elif self.path.endswith("/close"):
            body = b'{"closing": true}'
            self.send_response(200)
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            body = b'{"items": [{"n": 12345678901234567890123}], "path": "%s"}' % (
                self.path.encode()
            )
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if type(self).close_after_answer:  # drop the connection without saying so
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"seen": [], "close_after_answer": False})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_gets_reuse_one_connection_and_carry_each_clusters_token(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    first = build_api_client(ConnectionSpec(server=url + "/c/1", token="token-one"))
    second = build_api_client(ConnectionSpec(server=url + "/c/2", token="token-two"))
    assert first.keelson_endpoint is second.keelson_endpoint  # one endpoint, one pool
    answers = [get_json(first, "/api/v1/pods", {"limit": "500"}) for _ in range(3)]
    answers.append(get_json(second, "/api/v1/nodes"))
    # the gateway's prefix and the query are kept, big integers decode exactly
    assert answers[0]["path"] == "/c/1/api/v1/pods?limit=500"
    assert answers[3]["path"] == "/c/2/api/v1/nodes"
    assert answers[0]["items"][0]["n"] == 12345678901234567890123
    assert [auth for _, auth, _ in handler.seen] == ["Bearer token-one"] * 3 + ["Bearer token-two"]
    assert len({port for _, _, port in handler.seen}) == 1  # kept alive throughout


def test_a_server_closing_idle_connections_costs_a_reconnect_not_an_error(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    handler.close_after_answer = True
    api = build_api_client(ConnectionSpec(server=url, token="t"))
    for _ in range(3):
        assert get_json(api, "/version")["path"] == "/version"
    assert len({port for _, _, port in handler.seen}) == 3  # a new connection each time


def test_an_http_error_is_an_api_exception_without_the_servers_text(
    server: tuple[str, type[_Handler]],
) -> None:
    from kubernetes.client.exceptions import ApiException

    url, _ = server
    api = build_api_client(ConnectionSpec(server=url, token="t"))
    with pytest.raises(ApiException) as raised:
        get_json(api, "/api/v1/missing")
    assert raised.value.status == 404
    assert "secret-ish" not in str(raised.value)
    assert classify(raised.value).code == "error"
    assert get_json(api, "/api/v1/pods")["path"] == "/api/v1/pods"  # the connection still serves


def test_a_server_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections (the kernel does), never answers
    try:
        endpoint = kube_http.Endpoint(
            f"http://127.0.0.1:{listener.getsockname()[1]}", tls=None, timeout=(1.0, 0.3)
        )
        with pytest.raises(TimeoutError) as raised:
            kube_http.get(endpoint, "", "/version", {})
        assert classify(raised.value).code == "timeout"
    finally:
        listener.close()


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = kube_http.Endpoint(f"http://127.0.0.1:{port}", tls=None, timeout=(1.0, 1.0))
    with pytest.raises(ConnectionRefusedError) as raised:
        kube_http.get(endpoint, "", "/version", {})
    assert classify(raised.value).code == "unreachable"


def test_a_ca_that_does_not_load_fails_requests_as_a_tls_error() -> None:
    api = build_api_client(ConnectionSpec(server="https://127.0.0.1:1/", ca_data="not a CA"))
    with pytest.raises(Exception) as raised:
        get_json(api, "/version")
    assert classify(raised.value).code == "tls"


def test_a_connection_idle_past_the_limit_is_not_reused(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    endpoint = kube_http.Endpoint(url, tls=None, timeout=(1.0, 1.0))
    now = [1000.0]
    endpoint.clock = lambda: now[0]
    kube_http.get(endpoint, "", "/a", {})
    kube_http.get(endpoint, "", "/b", {})  # within the limit: the same connection
    now[0] += kube_http.MAX_IDLE_SECONDS + 1  # a load balancer may have dropped it by now
    kube_http.get(endpoint, "", "/c", {})
    ports = [port for _, _, port in handler.seen]
    assert ports[0] == ports[1] != ports[2]
    assert endpoint.idle() == 1


def test_an_idle_connection_the_server_closed_is_not_reused(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    handler.close_after_answer = True  # closes without saying so
    endpoint = kube_http.Endpoint(url, tls=None, timeout=(1.0, 1.0))
    kube_http.get(endpoint, "", "/a", {})
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not kube_http._dropped(endpoint._idle[-1][1]):
        time.sleep(0.01)  # the server's FIN arrives
    assert kube_http._dropped(endpoint._idle[-1][1])
    kube_http.get(endpoint, "", "/b", {})  # a new connection, no failed attempt first
    assert [path for path, _, _ in handler.seen] == ["/a", "/b"]


def test_chunked_answers_and_answers_that_close(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    api = build_api_client(ConnectionSpec(server=url, token="t"))
    assert get_json(api, "/api/v1/chunked") == {"items": [{"n": 1}, {"n": 2}]}
    assert get_json(api, "/api/v1/pods")["path"] == "/api/v1/pods"  # same connection after
    assert get_json(api, "/api/v1/close") == {"closing": True}
    assert api.keelson_endpoint.idle() == 0  # the server said close: not kept
    assert get_json(api, "/api/v1/pods")["path"] == "/api/v1/pods"
    ports = [port for _, _, port in handler.seen]
    assert ports[0] == ports[1] == ports[2] != ports[3]


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: application/json\r\nContent-Length: 12\r\n\r\n",
        b"Audit-Id: a\r\naudit-id: b\r\nCache-Control: no-cache, private\r\nEmpty:\r\n\r\n",
        b"Transfer-Encoding: chunked\r\nX-Odd:  spaced value \r\n\n",
        b"\r\n",
        b"Bare: lf\nOther: too\n\n",
    ],
)
def test_headers_split_as_http_client_splits_them(raw: bytes) -> None:
    import http.client
    import io

    ours = kube_http.parse_headers(io.BytesIO(raw + b"body"))
    theirs = http.client.parse_headers(io.BytesIO(raw + b"body"))
    assert ours.items() == theirs.items()
    for name in ("content-length", "transfer-encoding", "AUDIT-ID", "missing"):
        assert ours.get_all(name) == theirs.get_all(name)


def test_folded_lines_join_with_a_space_and_lines_without_a_colon_are_skipped() -> None:
    import io

    raw = b"Warning: one\r\n two\r\n\tthree\r\nNo-Colon\r\nContent-Length: 3\r\n\r\n"
    parsed = kube_http.parse_headers(io.BytesIO(raw))
    assert parsed.items() == [("Warning", "one two three"), ("Content-Length", "3")]


def test_too_many_headers_are_refused() -> None:
    import http.client
    import io

    with pytest.raises(http.client.HTTPException):
        kube_http.parse_headers(io.BytesIO(b"X: y\r\n" * 101 + b"\r\n"))


def test_idle_connections_are_bounded_across_endpoints(
    server: tuple[str, type[_Handler]], settings: Any
) -> None:
    """With one endpoint per cluster, a worker keeps at most KEELSON_KUBE_IDLE_CONNECTIONS
    sockets: the oldest idle ones are closed, whichever endpoint keeps them."""
    url, handler = server
    settings.KEELSON_KUBE_IDLE_CONNECTIONS = 2
    endpoints = [kube_http.Endpoint(url, tls=None, timeout=(1.0, 1.0)) for _ in range(4)]
    for index, endpoint in enumerate(endpoints):
        kube_http.get(endpoint, "", f"/cluster/{index}", {})
    assert [e.idle() for e in endpoints] == [0, 0, 1, 1]
    assert len(kube_http._ledger) == 2
    kube_http.get(endpoints[3], "", "/again", {})  # reused, still two
    kube_http.get(endpoints[0], "", "/back", {})  # a new connection; endpoint 2's goes
    assert [e.idle() for e in endpoints] == [1, 0, 0, 1]
    ports = [port for _, _, port in handler.seen]
    assert ports[4] == ports[3] and ports[5] not in ports[:4]
    for endpoint in endpoints:
        endpoint.close()
    assert len(kube_http._ledger) == 0


def test_tls_contexts_are_shared_per_identity_not_per_endpoint(tmp_path: Path) -> None:
    """A context holding the system's CAs is most of a megabyte: clusters registered without
    a CA of their own share one, whatever their endpoints; a cluster's own CA, client
    certificate or skipped verification gets its own."""
    one = ensure_tls(tmp_path / "one").ca_pem
    other = ensure_tls(tmp_path / "other").ca_pem

    def context(server: str, **spec: Any) -> ssl.SSLContext:
        endpoint = build_api_client(ConnectionSpec(server=server, **spec)).keelson_endpoint
        found = endpoint.context()
        assert found is not None
        return found

    public = context("https://a.example.invalid:6443")
    assert context("https://b.example.invalid:443") is public
    assert public.verify_mode == ssl.CERT_REQUIRED and public.check_hostname
    own = context("https://c.example.invalid:6443", ca_data=one)
    assert own is not public
    assert context("https://d.example.invalid:6443", ca_data=one) is own
    assert context("https://e.example.invalid:6443", ca_data=other) is not own
    skipped = context("https://f.example.invalid:6443", insecure_skip_tls_verify=True)
    assert skipped is not public and skipped.verify_mode == ssl.CERT_NONE
