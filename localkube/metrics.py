"""A metrics-server stand-in: `metrics.k8s.io/v1beta1` served as an aggregated API.

Real clusters serve usage through metrics-server, which the API server's aggregator proxies
to: an `APIService` names a Service, the aggregator resolves it and forwards
`/apis/metrics.k8s.io/v1beta1/...` over TLS verified against the APIService's caBundle.
Here there is no kube-proxy and the Endpoints API refuses loopback addresses, so the
Service is of type ExternalName (`localhost`): kube-apiserver 1.20 without
`--enable-aggregator-routing` resolves it to `https://localhost:<port>` and checks the
serving certificate for `<service>.<namespace>.svc`, as it does for any aggregated server.
It listens on 127.0.0.1 only and does not check the aggregator's client identity (a
test stand-in; metrics-server checks the request-header client certificate).

Usage is made up deterministically: each container uses `fraction x its request` (per
namespace, CPU and memory separately); a node uses the sum over its pods.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

logger = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
SERVICE, NAMESPACE = "metrics-server", "kube-system"
PREFIX = f"/apis/{GROUP}/{VERSION}"
RESOURCES = {
    "apiVersion": "v1",
    "kind": "APIResourceList",
    "groupVersion": f"{GROUP}/{VERSION}",
    "resources": [
        {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs}
        for name, namespaced, kind, verbs in (
            ("nodes", False, "NodeMetrics", ["get", "list"]),
            ("pods", True, "PodMetrics", ["get", "list"]),
        )
    ],
}


@dataclass
class Usage:
    """How much of its requests a namespace's containers use (1 = exactly the request)."""

    cpu: Decimal = Decimal("0.5")
    memory: Decimal = Decimal("0.5")


@dataclass
class MetricsServer:
    """Serves PodMetrics and NodeMetrics computed from the pods the API server holds."""

    api_client: k8s.ApiClient
    default: Usage = field(default_factory=Usage)
    namespaces: dict[str, Usage] = field(default_factory=dict)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _ca_pem: bytes = b""

    # --- what is served ------------------------------------------------------------------
    def pod_metrics(self) -> list[dict[str, Any]]:
        core = k8s.CoreV1Api(self.api_client)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        items = []
        for pod in core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items:
            usage = self.namespaces.get(pod.metadata.namespace, self.default)
            containers = []
            for container in pod.spec.containers:
                requests = (container.resources and container.resources.requests) or {}
                cpu = Decimal(parse_quantity(requests.get("cpu", "0"))) * usage.cpu
                memory = Decimal(parse_quantity(requests.get("memory", "0"))) * usage.memory
                containers.append(
                    {
                        "name": container.name,
                        "usage": {"cpu": f"{int(cpu * 10**9)}n", "memory": f"{int(memory)}"},
                    }
                )
            items.append(
                {
                    "metadata": {
                        "name": pod.metadata.name,
                        "namespace": pod.metadata.namespace,
                        "creationTimestamp": now,
                    },
                    "timestamp": now,
                    "window": "30s",
                    "containers": containers,
                    "_node": pod.spec.node_name or "",
                }
            )
        return items

    def node_metrics(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        totals: dict[str, list[Decimal]] = {}
        for pod in pods:
            total = totals.setdefault(pod["_node"], [Decimal(0), Decimal(0)])
            for container in pod["containers"]:
                total[0] += Decimal(parse_quantity(container["usage"]["cpu"]))
                total[1] += Decimal(parse_quantity(container["usage"]["memory"]))
        return [
            {
                "metadata": {"name": node},
                "timestamp": pods[0]["timestamp"],
                "window": "30s",
                "usage": {"cpu": f"{int(cpu * 10**9)}n", "memory": f"{int(memory)}"},
            }
            for node, (cpu, memory) in sorted(totals.items())
            if node
        ]

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0].rstrip("/")
        if path in (PREFIX, f"/apis/{GROUP}"):
            if path == PREFIX:
                return 200, RESOURCES
            return 200, {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": GROUP,
                "versions": [{"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}],
                "preferredVersion": {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION},
            }
        pods = self.pod_metrics()
        if path == f"{PREFIX}/pods":
            items = [{k: v for k, v in pod.items() if k != "_node"} for pod in pods]
            return 200, self._list("PodMetricsList", items)
        if path == f"{PREFIX}/nodes":
            return 200, self._list("NodeMetricsList", self.node_metrics(pods))
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}

    @staticmethod
    def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": kind,
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {"selfLink": PREFIX},
            "items": items,
        }

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Serve on 127.0.0.1 and register the APIService with the API server."""
        cert_pem, key_pem = _serving_certificate()
        self._ca_pem = cert_pem
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as directory:
            cert, key = Path(directory, "tls.crt"), Path(directory, "tls.key")
            cert.write_bytes(cert_pem)
            key.write_bytes(key_pem)
            context.load_cert_chain(cert, key)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    status, body = owner.answer(self.path)
                except Exception:
                    logger.exception("metrics server failed")
                    status, body = 500, {"kind": "Status", "status": "Failure", "code": 500}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug(format, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        self._register()
        self._wait_available()

    def _wait_available(self, timeout: float = 30.0) -> None:
        """Until the aggregator has probed the server and routes to it."""
        registration = k8s.ApiregistrationV1Api(self.api_client)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = registration.read_api_service(f"{VERSION}.{GROUP}").status
            if any(c.type == "Available" and c.status == "True" for c in status.conditions or ()):
                return
            time.sleep(0.3)
        raise TimeoutError(f"{VERSION}.{GROUP} not Available after {timeout:.0f}s")

    def _register(self) -> None:
        core = k8s.CoreV1Api(self.api_client)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"name": "https", "port": self.port}],
            },
        }
        try:
            core.create_namespaced_service(NAMESPACE, service)
        except ApiException as error:
            if error.status != 409:
                raise
            core.replace_namespaced_service(SERVICE, NAMESPACE, service)
        registration = k8s.ApiregistrationV1Api(self.api_client)
        name = f"{VERSION}.{GROUP}"
        metadata: dict[str, str] = {"name": name}
        body = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": metadata,
            "spec": {
                "group": GROUP,
                "version": VERSION,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "service": {"name": SERVICE, "namespace": NAMESPACE, "port": self.port},
                "caBundle": base64.b64encode(self._ca_pem).decode(),
            },
        }
        try:
            registration.create_api_service(body)
        except ApiException as error:
            if error.status != 409:
                raise
            current = registration.read_api_service(name)
            metadata["resourceVersion"] = current.metadata.resource_version
            registration.replace_api_service(name, body)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _serving_certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for the name the aggregator checks
    (`<service>.<namespace>.svc`); it is its own CA (the APIService's caBundle)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{SERVICE}.{NAMESPACE}.svc")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"{SERVICE}.{NAMESPACE}.svc")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
