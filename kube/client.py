"""API clients for member clusters: TLS verified, timeouts, bounded retries, one per cluster.

`ConnectionSpec` is what a credential decrypts to. Its repr hides every secret, and
`classify` turns whatever the client raised into a `ClusterConnectError` whose code
says what failed (unreachable, TLS, authentication, permission) and whose message is
safe to show: it never contains a token, a key or a response body. It does keep the
API server's own explanation (the `message` of a `Status` answer, "deployments.apps "web"
is forbidden: ..."), cut short and with anything token-like redacted: without it a
refused write says only its status code.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import ssl
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from kube import egress
from kube import http as kube_http

# (connect, read) seconds where no Django settings exist (the pull agent's process).
DEFAULT_TIMEOUT = (5.0, 15.0)


def request_timeout() -> tuple[float, float]:
    """(connect, read) seconds for every call Keelson makes to a member cluster: the
    KEELSON_CLUSTER_CONNECT_TIMEOUT and KEELSON_CLUSTER_READ_TIMEOUT settings."""
    if not settings.configured:
        return DEFAULT_TIMEOUT
    return (settings.KEELSON_CLUSTER_CONNECT_TIMEOUT, settings.KEELSON_CLUSTER_READ_TIMEOUT)


@dataclass(frozen=True)
class ConnectionSpec:
    server: str
    ca_data: str = ""
    token: str = field(default="", repr=False)
    client_cert_data: str = field(default="", repr=False)
    client_key_data: str = field(default="", repr=False)
    insecure_skip_tls_verify: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ConnectionSpec:
        return cls(**json.loads(text))


class ClusterConnectError(Exception):
    """Connecting to or calling a cluster failed. `code` is one of: unreachable, timeout,
    tls, unauthorized, forbidden, invalid, error. Transient codes are worth a retry."""

    TRANSIENT = frozenset({"unreachable", "timeout", "error"})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def transient(self) -> bool:
        return self.code in self.TRANSIENT


_cert_dir: Path | None = None
_cert_lock = threading.Lock()


def _private_file(content: str, suffix: str) -> str:
    """Client certificates must be files for urllib3: keep them in a 0700 temp dir that
    is removed at exit."""
    global _cert_dir
    with _cert_lock:
        if _cert_dir is None:
            _cert_dir = Path(tempfile.mkdtemp(prefix="keelson-certs-"))
            atexit.register(shutil.rmtree, _cert_dir, True)
    handle, path = tempfile.mkstemp(dir=_cert_dir, suffix=suffix)
    with os.fdopen(handle, "w") as file:
        file.write(content)
    return path


def build_api_client(spec: ConnectionSpec, *, retries: int = 1) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.host = spec.server
    configuration.verify_ssl = not spec.insecure_skip_tls_verify
    if spec.ca_data:
        configuration.ca_cert_data = spec.ca_data
    if spec.token:
        configuration.api_key = {"authorization": f"Bearer {spec.token}"}
    if spec.client_cert_data:
        configuration.cert_file = _private_file(spec.client_cert_data, ".crt")
        configuration.key_file = _private_file(spec.client_key_data, ".key")
    # Bounded retries with backoff on connection errors only: a probe must fail fast.
    configuration.retries = urllib3.Retry(
        total=retries, connect=retries, read=0, status=0, redirect=0, backoff_factor=0.3
    )
    configuration.connection_pool_maxsize = ENDPOINT_CONNECTIONS
    api = k8s.ApiClient(configuration)
    egress.guard_pools(api.rest_client.pool_manager)
    api.rest_client = _shared_transport(spec, retries, api.rest_client)
    # GETs in volume (lists, probes) go through the lean transport (kube/http.py)
    api.keelson_endpoint = _shared_endpoint(spec, configuration)
    api.keelson_prefix = kube_http.server_prefix(spec.server)
    return api


# Idle connections kept per API server endpoint: enough for a shard's probe threads.
ENDPOINT_CONNECTIONS = 32
_transports: dict[tuple[Any, ...], Any] = {}
_transports_lock = threading.Lock()


def _shared_transport(spec: ConnectionSpec, retries: int, built: Any) -> Any:
    """The urllib3 pool of clusters served at the same endpoint (scheme, host, port) with
    the same TLS trust and client identity, shared, so keep-alive connections serve all of
    them (clusters behind one proxy or gateway; every request still carries its cluster's
    own bearer token). Clusters with their own endpoints keep their own pool."""
    with _transports_lock:
        return _transports.setdefault((*_endpoint_key(spec), retries), built)


def _endpoint_key(spec: ConnectionSpec) -> tuple[Any, ...]:
    """Clusters with equal keys can share connections: one endpoint, one TLS identity."""
    parts = urllib3.util.parse_url(spec.server)
    return (
        parts.scheme,
        parts.host,
        parts.port,
        spec.ca_data,
        spec.client_cert_data,
        spec.client_key_data,
        spec.insecure_skip_tls_verify,
    )


_endpoints: dict[tuple[Any, ...], kube_http.Endpoint] = {}


def _shared_endpoint(spec: ConnectionSpec, configuration: Any) -> kube_http.Endpoint:
    """The lean transport's connections, shared as `_shared_transport` shares pools."""
    key = _endpoint_key(spec)
    with _transports_lock:
        found = _endpoints.get(key)
        if found is None:
            tls = None
            if key[0] == "https":
                tls = functools.partial(
                    _shared_context,
                    key[3:],
                    ca_data=spec.ca_data,
                    insecure=spec.insecure_skip_tls_verify,
                    cert_file=configuration.cert_file or "",
                    key_file=configuration.key_file or "",
                )
            found = _endpoints[key] = kube_http.Endpoint(
                spec.server, tls=tls, timeout=request_timeout()
            )
        return found


_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def _shared_context(identity: tuple[Any, ...], **options: Any) -> ssl.SSLContext:
    """One TLS context per identity (CA, client certificate, verification), whatever the
    endpoint: a context holding the system's CAs is 0.8 MiB, and every cluster registered
    without a CA of its own (a publicly signed endpoint) had its own. Contexts are safe to
    share between threads; the server's name is checked per connection."""
    with _transports_lock:
        found = _contexts.get(identity)
    if found is None:
        built = kube_http.tls_context(**options)  # outside the lock: loads certificates
        with _transports_lock:
            found = _contexts.setdefault(identity, built)
    return found


STATUS_MESSAGE_CHARS = 300
# Token-like runs (JWTs, bearer tokens, base64 keys): never shown, even when a server or
# an admission webhook echoes one back in its message.
# Object names (lowercase, hyphens) stay readable; a long run mixing cases and digits, or
# 32+ hex digits, is taken for a secret.
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+\S+")
_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
_LONG_RUN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _token_like(run: str) -> bool:
    mixed = any(c.isupper() for c in run) and any(c.isdigit() for c in run)
    return mixed or re.fullmatch(r"[0-9a-fA-F]+", run) is not None


def safe_server_text(text: str) -> str:
    """A server-provided message made fit to show: one line, short, nothing token-like."""
    text = _JWT.sub("[redacted]", _BEARER.sub(r"\1 [redacted]", _CONTROL.sub(" ", text)))
    text = _LONG_RUN.sub(lambda m: "[redacted]" if _token_like(m[0]) else m[0], text).strip()
    if len(text) > STATUS_MESSAGE_CHARS:
        text = text[: STATUS_MESSAGE_CHARS - 1].rstrip() + "…"
    return text


def status_message(body: bytes | str | None) -> str:
    """The `message` of a Kubernetes `Status` answer (made safe), or ''."""
    if not body:
        return ""
    try:
        status = json.loads(body)
    except (ValueError, TypeError):
        return ""
    if not isinstance(status, dict) or not isinstance(status.get("message"), str):
        return ""
    return safe_server_text(status["message"])


def classify(error: BaseException, server: str = "") -> ClusterConnectError:
    """A safe, specific error for anything the kubernetes client raised."""
    if isinstance(error, ClusterConnectError):
        return error
    if isinstance(error, egress.EgressDenied):
        return ClusterConnectError("invalid", str(error))
    where = f" {server}" if server else ""
    text = f"{error!r} {getattr(error, 'reason', '')}"
    if isinstance(error, ResourceNotFoundError):
        # Discovery found no such kind: the cluster does not serve this API version
        # (CronJob is batch/v1beta1 on 1.20) or lacks the CRD. Permanent until it does.
        return ClusterConnectError(
            "invalid",
            f"The API server{where} does not serve this kind: "
            + safe_server_text(str(error) or "no matching resource in discovery"),
        )
    if isinstance(error, ApiException) and error.status:
        said = status_message(getattr(error, "body", None))
        explained = f": {said}" if said else "."
        if error.status == 401:
            return ClusterConnectError(
                "unauthorized",
                f"The API server{where} rejected the credentials (401 Unauthorized): the token "
                "or client certificate is wrong or expired.",
            )
        if error.status == 403:
            return ClusterConnectError(
                "forbidden", f"The API server{where} refused the request (403 Forbidden){explained}"
            )
        if 400 <= error.status < 500 and error.status not in (404, 408, 409, 429):
            return ClusterConnectError(
                "invalid",
                f"The API server{where} refused the request ({error.status} {error.reason})"
                + explained,
            )
        answered = f"The API server{where} answered {error.status} {error.reason or ''}".strip()
        return ClusterConnectError("error", answered + (f": {said}" if said else ""))
    if any(
        marker in text
        for marker in ("CERTIFICATE_VERIFY_FAILED", "SSLError", "SSL:", "certificate", "hostname")
    ):
        detail = "the certificate is not signed by the given CA"
        if "hostname" in text.lower() or "IP address mismatch" in text:
            detail = "the certificate does not match the server's name"
        return ClusterConnectError(
            "tls",
            f"TLS verification of{where or ' the API server'} failed: {detail}. Check the CA "
            "bundle (certificate-authority-data).",
        )
    if "ReadTimeout" in text or "timed out" in text.lower():
        return ClusterConnectError(
            "timeout", f"The API server{where} did not answer within {request_timeout()[1]:.0f}s."
        )
    if any(
        marker in text
        for marker in ("NewConnectionError", "ConnectTimeout", "Connection refused", "resolve")
    ) or isinstance(error, urllib3.exceptions.HTTPError | OSError):
        return ClusterConnectError(
            "unreachable",
            f"Cannot connect to{where or ' the API server'}: nothing answered (refused, "
            "unresolvable or filtered).",
        )
    return ClusterConnectError(
        "error", f"Unexpected error talking to{where or ' the API server'}: {type(error).__name__}"
    )


class ClientCache:
    """One ApiClient per cluster and credential version, per process (DESIGN.md)."""

    def __init__(self) -> None:
        self._clients: dict[int, tuple[int, k8s.ApiClient]] = {}
        self._lock = threading.Lock()

    def get(self, cluster_id: int, version: int) -> k8s.ApiClient | None:
        with self._lock:
            entry = self._clients.get(cluster_id)
            return entry[1] if entry and entry[0] == version else None

    def put(self, cluster_id: int, version: int, api_client: k8s.ApiClient) -> None:
        with self._lock:
            old = self._clients.get(cluster_id)
            self._clients[cluster_id] = (version, api_client)
        if old is not None and old[1] is not api_client:
            old[1].close()

    def drop(self, cluster_id: int) -> None:
        with self._lock:
            old = self._clients.pop(cluster_id, None)
        if old is not None:
            old[1].close()


clients = ClientCache()


def timeout_kwargs() -> dict[str, Any]:
    return {"_request_timeout": request_timeout()}


def get_json(
    api: k8s.ApiClient,
    path: str,
    query: dict[str, str] | None = None,
    *,
    accept: str = "application/json",
    timeout: tuple[float, float] | None = None,
) -> Any:
    """GET `path` and return the decoded JSON, without the client's model objects.

    Same transport as the generated API methods (the ApiClient's urllib3 pool: TLS
    verification, client certificate, retries), the same bearer header, the same timeouts,
    and the same `ApiException` for a non-2xx answer (without its body), so `classify` sees
    what it always saw. Turning a list into model objects was most of a probe's CPU.
    `accept` negotiates another JSON representation (aggregated discovery); `timeout`
    (connect, read) replaces the usual ones for a caller that must answer sooner.
    """
    return request_json(api, "GET", path, query, accept=accept, timeout=timeout)


def request_json(
    api: k8s.ApiClient,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    *,
    accept: str = "application/json",
    content_type: str = "application/json",
    timeout: tuple[float, float] | None = None,
) -> Any:
    """`get_json` for any method; `body` is sent as JSON, labelled `content_type` (a
    server-side apply's is `application/apply-patch+yaml`: JSON is YAML)."""
    target = path + ("?" + urlencode(query) if query else "")
    headers = {**api.default_headers, "Accept": accept}
    sent: dict[str, Any] | str | None = body
    if body is not None:
        headers["Content-Type"] = content_type
        if content_type != "application/json":
            sent = json.dumps(body)  # the client encodes only JSON types itself
    api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
    endpoint = getattr(api, "keelson_endpoint", None)
    if method == "GET" and endpoint is not None and timeout is None:
        data = kube_http.get(endpoint, api.keelson_prefix, target, headers)
        return decode_json(data) if data else None
    url = api.configuration.host + target
    response = api.rest_client.request(
        method, url, headers=headers, body=sent, _request_timeout=timeout or request_timeout()
    )
    data = response.read()
    if not 200 <= response.status <= 299:
        # Only the Status message travels on (classify shows it); the rest of the body,
        # which may echo what was sent, does not.
        said = status_message(data)
        raise ApiException.from_response(
            http_resp=response, body=json.dumps({"message": said}) if said else "", data=None
        )
    return decode_json(data) if data else None


# A run of 19 digits, found by mapping every digit to "0" and searching for nineteen of
# them: a twentieth of the CPU of the regular expression `\d{19}`, which cost more than
# orjson's parsing of the same list.
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def decode_json(data: bytes) -> Any:
    """orjson (a list of thousands of objects decodes in a fraction of the time), or the
    standard decoder wherever a number may lie past 64 bits: orjson would make such an
    integer a float, and a policy would judge another value than the cluster holds."""
    if data.translate(_DIGITS).find(_LONG_NUMBER) < 0:
        return orjson.loads(data)
    return json.loads(data)
