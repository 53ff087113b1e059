"""Ways around the egress policy (kube/egress.py), each performed for real.

1. IPv6 addresses carrying a forbidden IPv4 address (mapped, compatible, NAT64, 6to4,
   Teredo) are judged as that IPv4 address.
2. A URL the check and the HTTP client would read differently (`127.0.0.1\\@127.0.0.2`:
   `urlsplit` reads 127.0.0.2, urllib3 127.0.0.1) is refused.
3. DNS rebinding: the name is resolved and checked again at every new connection, and
   the socket goes to the address checked, on both transports (the kubernetes client's
   urllib3 pools and the lean GET transport). The resolver is swapped in-process at
   `socket.getaddrinfo`, which both the check and the clients call: no /etc/hosts edit
   and no DNS server are needed, and the sockets are real.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from accounts.choices import Role
from benchmarks.simulator import ensure_tls
from clusters.models import Cluster
from kube.client import (
    ClusterConnectError,
    ConnectionSpec,
    build_api_client,
    classify,
    get_json,
    request_json,
)
from kube.egress import EgressDenied, check_egress
from tests.security.members import api_member


@pytest.mark.parametrize(
    "url",
    [
        "https://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "https://[::169.254.169.254]/",  # IPv4-compatible
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 well-known prefix, 169.254.169.254
        "https://[64:ff9b:1:a9fe:a9:fe00::]/",  # NAT64 local-use /48 (RFC 6052 /48 layout)
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
        # Teredo: client address is the last 32 bits inverted: 5601:5601 -> 169.254.169.254
        "https://[2001:0:4136:e378:8000:63bf:5601:5601]/",
        "https://[::ffff:127.0.0.1]:6443",  # loopback, disallowed here
        "https://[::ffff:0.0.0.0]:6443",
        "https://0.0.0.1:6443",  # 0.0.0.0/8 reaches this host on Linux
    ],
)
def test_ipv6_forms_of_forbidden_ipv4_addresses_are_refused(settings: Any, url: str) -> None:
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = []
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    with pytest.raises(EgressDenied):
        check_egress(url)


def test_mapped_address_of_an_allowed_network_is_judged_as_that_network(settings: Any) -> None:
    # given an allowlist of 10.0.0.0/8 only
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["10.0.0.0/8"]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    # then ::ffff:10.1.2.3 is 10.1.2.3 and allowed; ::ffff:192.168.1.1 is not
    check_egress("https://[::ffff:10.1.2.3]:6443")
    with pytest.raises(EgressDenied):
        check_egress("https://[::ffff:192.168.1.1]:6443")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1\\@127.0.0.2/",
        "https://user:pass@127.0.0.2/",
        "https://127.0.0.2 /",
        "https://127.0.0.2\t/",
        "https://127.0.0.2%2f@127.0.0.1/",
        "https://[::1%25lo]/",
        "https://2130706433/",  # 127.0.0.1 as one number
        "https://0x7f.0.0.1/",
        "https://127.1/",
        "https://ex\u0430mple.com/",  # a Cyrillic a
        "https://127.0.0.2/?x=@127.0.0.1",
        "https://127.0.0.2:99999/",
    ],
)
def test_urls_parsers_disagree_on_are_refused(settings: Any, url: str) -> None:
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["127.0.0.2/32"]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    with pytest.raises(EgressDenied):
        check_egress(url)


class _Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    found = _Listener()
    yield found
    found.close()


def _register(server: str) -> Any:
    client = api_member("platform", Role.ADMIN)
    return client.post(
        "/api/v1/clusters/",
        {
            "name": "ssrf",
            "team": "platform",
            "server": server,
            "token": "the-bearer-token",
            "insecure_skip_tls_verify": True,
        },
        format="json",
    )


@pytest.mark.django_db
def test_registering_a_mapped_loopback_address_is_refused_before_connecting(
    settings: Any, listener: _Listener
) -> None:
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = []
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    response = _register(f"https://[::ffff:127.0.0.1]:{listener.port}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "forbidden_address"
    assert listener.accepted == 0
    assert not Cluster.objects.exists()


@pytest.mark.django_db
def test_registering_a_backslash_userinfo_url_never_reaches_the_other_host(
    settings: Any, listener: _Listener
) -> None:
    # given only 127.0.0.2 allowed, and a listener on 127.0.0.1 (what urllib3 would reach)
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["127.0.0.2/32"]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    response = _register(f"https://127.0.0.1:{listener.port}\\@127.0.0.2:{listener.port}/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "forbidden_address"
    assert listener.accepted == 0


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []  # the Authorization headers received

    def _answer(self) -> None:
        type(self).seen.append(self.headers.get("Authorization", ""))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"major": "1", "minor": "20"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # every request is a new connection
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _served(tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, type[_Recorder]]]:
    """A recording HTTP(S) server on 127.0.0.1: its port and its handler class."""
    handler = type("Recorder", (_Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Names in `answers` resolve to their next address (the last one repeats); the
    resolutions are recorded. Other names go to the real resolver."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(name)
        address = answers[name].pop(0) if len(answers[name]) > 1 else answers[name][0]
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _call_both_transports(api: Any) -> list[BaseException]:
    """A GET (lean transport) and a POST (kubernetes client's urllib3 pool)."""
    errors: list[BaseException] = []
    for call in (
        lambda: get_json(api, "/version"),
        lambda: request_json(api, "POST", "/apis/x/v1/things", body={"a": 1}),
    ):
        try:
            call()
        except Exception as error:
            errors.append(error)
    return errors


def test_a_name_rebound_to_a_forbidden_address_after_the_check_is_not_connected_to(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given only 127.0.0.2 allowed, and a server with secrets on 127.0.0.1
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["127.0.0.2/32"]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    # and a name that answers 127.0.0.2 once (the check), then 127.0.0.1
    asked = _resolver(monkeypatch, {"rebind.test": ["127.0.0.2", "127.0.0.1"]})
    with _served() as (port, handler):
        url = f"http://rebind.test:{port}"
        check_egress(url)  # passes: rebind.test is 127.0.0.2 now
        api = build_api_client(ConnectionSpec(server=url, token="the-bearer-token"), retries=0)
        # when the hub calls the cluster on both transports
        errors = _call_both_transports(api)
    # then the server on 127.0.0.1 received nothing, and each call was refused as such
    assert handler.seen == []
    assert len(errors) == 2
    for error in errors:
        refused = classify(error)
        assert refused.code == "invalid"
        assert "127.0.0.1" in refused.message  # named: what it resolved to now
    assert len(asked) >= 3  # the check, then once per new connection


def test_a_cached_client_is_checked_again_at_every_new_connection(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a client built and used while its address was allowed
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["127.0.0.1/32"]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    with _served() as (port, handler):
        url = f"http://127.0.0.1:{port}"
        api = build_api_client(ConnectionSpec(server=url, token="the-bearer-token"), retries=0)
        assert _call_both_transports(api) == []
        assert handler.seen == ["Bearer the-bearer-token"] * 2
        # when the address leaves the allowlist
        settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["10.0.0.0/8"]
        errors = _call_both_transports(api)
    # then the same client reaches the server no more
    assert len(handler.seen) == 2
    assert [classify(e).code for e in errors] == ["invalid", "invalid"]


def test_pinned_connections_still_verify_the_certificate_against_the_name(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a TLS server whose certificate names localhost (and 127.0.0.1), not kube.test
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = []
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = True
    files = ensure_tls(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    _resolver(monkeypatch, {"localhost": ["127.0.0.1"], "kube.test": ["127.0.0.1"]})
    ca = files.ca.read_text()
    with _served(context) as (port, handler):
        # when the hub calls it as localhost: SNI and verification use the name
        good = build_api_client(
            ConnectionSpec(server=f"https://localhost:{port}", ca_data=ca, token="t"), retries=0
        )
        good_errors = _call_both_transports(good)
        # and as kube.test, which reaches the same address but is not on the certificate
        bad = build_api_client(
            ConnectionSpec(server=f"https://kube.test:{port}", ca_data=ca, token="t"), retries=0
        )
        bad_errors = _call_both_transports(bad)
    assert good_errors == []
    assert len(handler.seen) == 2
    assert [classify(e).code for e in bad_errors] == ["tls", "tls"]


def test_classify_words_a_refused_connection_without_retrying() -> None:
    refused = classify(EgressDenied("x.test (10.0.0.1) is not in KEELSON_CLUSTER_URL_ALLOWLIST."))
    assert isinstance(refused, ClusterConnectError)
    assert (refused.code, refused.transient) == ("invalid", False)
