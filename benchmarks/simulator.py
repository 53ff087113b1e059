"""A fleet simulator in one asyncio process (issue 9, section 1).

* N simulated member clusters answer the part of the Kubernetes API Keelson calls
  (`clusters/kube/inventory.py`: /version, nodes, namespaces, deployments, statefulsets,
  daemonsets, pods, persistentvolumeclaims, warning events; `clusters/kube/access.py`:
  SelfSubjectAccessReview) over HTTPS with a self-signed CA, all on ONE port, cluster
  `n` under the prefix `https://127.0.0.1:PORT/c/<n>` with its own bearer token.
* A cluster can be killed (its connections reset, or left hanging so the client times
  out) and revived by a control call: `GET /control/kill?ids=3,7&mode=reset|hang`,
  `GET /control/revive?ids=3,7`, `GET /control/stats`.
* M pull-mode agents heartbeat to the hub's agent API (`/api/v1/agent/heartbeat/`),
  either each at an interval or back to back (to find what the hub absorbs).

Run `python -m benchmarks.simulator --clusters 10000 --port 18443` (it prints one JSON
line with its URL and CA path once it listens), or use `Simulator` from the benchmarks.
The HTTP server is a small HTTP/1.1 keep-alive server on asyncio streams: responses are
rendered once per cluster profile and served as bytes, so the simulator costs little
next to the hub it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import random
import resource
import secrets
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GIB = 2**30
MIB = 2**20
KUBE_VERSION = "v1.29.4"
INSTANCE_TYPES = (
    ("aws", "eu-west-1", "m5.xlarge", 4, 16),
    ("aws", "us-east-1", "m5.2xlarge", 8, 32),
    ("gcp", "europe-west1", "n2-standard-4", 4, 16),
    ("gcp", "us-central1", "n2-standard-8", 8, 32),
    ("azure", "westeurope", "Standard_D4s_v3", 4, 16),
    ("azure", "eastus", "Standard_D8s_v3", 8, 32),
    ("onprem", "dc-1", "bare-metal-16", 16, 64),
    ("edge", "store-1", "edge-small", 2, 4),
)
PROFILES = len(INSTANCE_TYPES)
# A cluster index divisible by this has one node NotReady (it reports Degraded).
DEGRADED_EVERY = 50
# Past this many open connections, the last call of a probe (warning events) answers
# "Connection: close" so the process stays under its descriptor limit.
CONNECTION_SOFT_CAP = 15000


# --- TLS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    secret: Path  # HMAC key the cluster tokens derive from

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()

    def token_secret(self) -> bytes:
        return self.secret.read_bytes()


def ensure_tls(directory: Path) -> TLSFiles:
    """A CA and a server certificate for 127.0.0.1/localhost (ECDSA P-256, cheap
    handshakes), made once and kept in `directory` (mode 0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = TLSFiles(
        directory / "ca.crt", directory / "server.crt", directory / "server.key", directory / "hmac"
    )
    if files.ca.exists() and files.cert.exists() and files.key.exists() and files.secret.exists():
        return files
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keelson-bench-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simulated-clusters")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    files.secret.write_bytes(secrets.token_bytes(32))
    files.secret.chmod(0o600)
    return files


def cluster_token(secret: bytes, index: int) -> str:
    """Cluster `index`'s bearer token (derived, so the hub's seeding and the simulator
    agree without passing 10,000 tokens around)."""
    return "sim-" + hmac.new(secret, str(index).encode(), hashlib.sha256).hexdigest()


def cluster_url(port: int, index: int) -> str:
    return f"https://127.0.0.1:{port}/c/{index}"


# --- the Kubernetes objects a simulated cluster serves ---------------------------------


def _list(kind: str, items: list[dict[str, Any]], api_version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "1000"},
        "items": items,
    }


def _container(name: str, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example/{name}:1.0",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }


def _workload(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [_container(name, "100m", "128Mi")]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def cluster_objects(profile: int, degraded: bool) -> dict[str, Any]:
    """The API objects of a cluster of `profile` (a few nodes, namespaces and pods)."""
    _, region, instance_type, cores, memory_gib = INSTANCE_TYPES[profile]
    node_count = 2 + profile % 4
    nodes = []
    for n in range(node_count):
        ready = not (degraded and n == 0)
        nodes.append(
            {
                "metadata": {
                    "name": f"node-{n}",
                    "labels": {
                        "kubernetes.io/hostname": f"node-{n}",
                        "node.kubernetes.io/instance-type": instance_type,
                        "topology.kubernetes.io/region": region,
                        "topology.kubernetes.io/zone": f"{region}-{'abc'[n % 3]}",
                    },
                },
                "spec": {},
                "status": {
                    "capacity": {
                        "cpu": str(cores),
                        "memory": f"{memory_gib}Gi",
                        "pods": "110",
                    },
                    "allocatable": {
                        "cpu": f"{cores * 1000 - 200}m",
                        "memory": f"{memory_gib * 1024 - 512}Mi",
                        "pods": "110",
                    },
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True" if ready else "False",
                            "reason": "KubeletReady" if ready else "KubeletNotReady",
                        }
                    ],
                    "nodeInfo": {
                        "architecture": "amd64",
                        "bootID": "boot",
                        "containerRuntimeVersion": "containerd://1.7.13",
                        "kernelVersion": "6.1.0",
                        "kubeProxyVersion": KUBE_VERSION,
                        "kubeletVersion": KUBE_VERSION,
                        "machineID": "machine",
                        "operatingSystem": "linux",
                        "osImage": "Debian GNU/Linux 12",
                        "systemUUID": "uuid",
                    },
                },
            }
        )
    namespaces = ["default", "kube-system", "shop", "payments"]
    pods = []
    for p in range(6 + 2 * profile):
        namespace = namespaces[p % len(namespaces)]
        pods.append(
            {
                "metadata": {"name": f"pod-{p}", "namespace": namespace},
                "spec": {
                    "nodeName": f"node-{p % node_count}",
                    "containers": [_container("app", f"{100 + 50 * (p % 4)}m", "256Mi")],
                },
                "status": {"phase": "Running"},
            }
        )
    daemonset = {
        "metadata": {"name": "node-exporter", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "node-exporter"}},
            "template": {
                "metadata": {"labels": {"app": "node-exporter"}},
                "spec": {"containers": [_container("node-exporter", "10m", "32Mi")]},
            },
        },
        "status": {
            "currentNumberScheduled": node_count,
            "desiredNumberScheduled": node_count,
            "numberMisscheduled": 0,
            "numberReady": node_count,
            "numberUnavailable": 0,
        },
    }
    event = {
        "metadata": {"name": "pod-0.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "pod-0", "namespace": "shop"},
        "reason": "BackOff",
        "message": "Back-off pulling image",
        "type": "Warning",
        "count": 2,
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    return {
        "/version": {
            "major": "1",
            "minor": "29",
            "gitVersion": KUBE_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-04-16T00:00:00Z",
            "goVersion": "go1.21.9",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
        "/api/v1/nodes": _list("NodeList", nodes),
        "/api/v1/namespaces": _list(
            "NamespaceList",
            [{"metadata": {"name": ns}, "status": {"phase": "Active"}} for ns in namespaces],
        ),
        "/api/v1/pods": _list("PodList", pods),
        "/api/v1/persistentvolumeclaims": _list(
            "PersistentVolumeClaimList",
            [
                {
                    "metadata": {"name": "data", "namespace": "shop"},
                    "spec": {"resources": {"requests": {"storage": "10Gi"}}},
                    "status": {"phase": "Bound"},
                }
            ],
        ),
        "/api/v1/events": _list("EventList", [event] if profile % 2 else []),
        "/apis/apps/v1/deployments": _list(
            "DeploymentList",
            [_workload("web", "shop", 2), _workload("api", "payments", 2)],
            "apps/v1",
        ),
        "/apis/apps/v1/statefulsets": _list(
            "StatefulSetList", [_workload("db", "payments", 1)], "apps/v1"
        ),
        "/apis/apps/v1/daemonsets": _list("DaemonSetList", [daemonset], "apps/v1"),
    }


def agent_inventory(profile: int) -> dict[str, Any]:
    """What a pull-mode agent of `profile` reports (the shape of `Inventory.as_json`)."""
    _, region, instance_type, cores, memory_gib = INSTANCE_TYPES[profile]
    node_count = 2 + profile % 4
    resources = {"cpu_millis": cores * 1000, "memory_bytes": memory_gib * GIB, "gpu": 0}
    nodes = [
        {
            "name": f"node-{n}",
            "ready": True,
            "ready_reason": "KubeletReady",
            "unschedulable": False,
            "kubelet_version": KUBE_VERSION,
            "instance_type": instance_type,
            "region": region,
            "zone": f"{region}-a",
            "capacity": {**resources, "pods": 110},
            "allocatable": {**resources, "cpu_millis": cores * 1000 - 200, "pods": 110},
            "taints": [],
        }
        for n in range(node_count)
    ]
    pods = 6 + 2 * profile
    return {
        "kubernetes_version": KUBE_VERSION,
        "api_latency_ms": 3.5,
        "nodes": nodes,
        "namespaces": [{"name": ns, "phase": "Active"} for ns in ("default", "kube-system")],
        "workloads": {"deployments": {"total": 2, "unavailable": 0}},
        "pods_by_phase": {"Running": pods},
        "pods_crashlooping": 0,
        "requested_cpu_millis": pods * 150,
        "requested_memory_bytes": pods * 256 * MIB,
        "warning_events": 0,
        "recent_warnings": [],
        "allocations": [
            {
                "node": "node-0",
                "namespace": "default",
                "cpu_millis": pods * 150,
                "memory_bytes": pods * 256 * MIB,
                "gpu": 0,
            }
        ],
        "storage_bytes": {"default": 10 * GIB},
    }


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


# --- the server -------------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    probes: int = 0  # /version calls: one per probe
    unauthorized: int = 0
    resets: int = 0
    open_connections: int = 0
    max_connections: int = 0


class Simulator:
    """N simulated clusters on one HTTPS port; see the module docstring."""

    def __init__(self, clusters: int, tls: TLSFiles, *, host: str = "127.0.0.1") -> None:
        self.clusters = clusters
        self.tls = tls
        self.host = host
        self.port = 0
        self.stats = Stats()
        self.killed: dict[int, str] = {}  # index -> "reset" | "hang"
        self._tokens: dict[int, bytes] = {}
        self._secret = tls.token_secret()
        self._bodies: dict[tuple[int, bool], dict[str, bytes]] = {}
        self._revived = asyncio.Event()
        self._server: asyncio.Server | None = None

    def token(self, index: int) -> bytes:
        token = self._tokens.get(index)
        if token is None:
            token = cluster_token(self._secret, index).encode()
            self._tokens[index] = token
        return token

    def bodies(self, index: int) -> dict[str, bytes]:
        key = (index % PROFILES, index % DEGRADED_EVERY == 0)
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
                length = 0
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    if lowered == b"authorization":
                        authorization = value.strip()
                    elif lowered == b"content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                stats.requests += 1
                response = await self._route(method, target, authorization, writer)
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
        self, method: bytes, target: str, authorization: bytes, writer: asyncio.StreamWriter
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
        if authorization != b"Bearer " + self.token(index):
            self.stats.unauthorized += 1
            return UNAUTHORIZED
        path = "/" + path.partition("?")[0].rstrip("/")
        if method == b"POST" and path.endswith("/selfsubjectaccessreviews"):
            return _response("201 Created", ACCESS_REVIEW)
        body = self.bodies(index).get(path)
        if body is None:
            return NOT_FOUND
        if path == "/version":
            self.stats.probes += 1
        close = path == "/api/v1/events" and self.stats.open_connections > CONNECTION_SOFT_CAP
        return _response("200 OK", body, close=close)

    def _control(self, target: str) -> bytes:
        url = urlsplit(target)
        query = parse_qs(url.query)
        ids = [int(i) for i in ",".join(query.get("ids", [])).split(",") if i]
        if url.path == "/control/kill":
            self.kill(ids, query.get("mode", ["reset"])[0])
        elif url.path == "/control/revive":
            self.revive(ids)
        elif url.path != "/control/stats":
            return NOT_FOUND
        body = {**self.stats.__dict__, "killed": sorted(self.killed), "clusters": self.clusters}
        return _response("200 OK", json.dumps(body).encode())


# --- pull-mode agents ---------------------------------------------------------------------


@dataclass
class AgentStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    late: int = 0  # interval mode: a heartbeat that started over one interval late
    statuses: dict[str, int] = field(default_factory=dict)  # answers other than 200
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

        elapsed = max(self.finished - self.started, 1e-9)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "late": self.late,
            "statuses": self.statuses,
            "seconds": round(elapsed, 2),
            "rate": round(self.ok / elapsed, 1),
            "p50_ms": round(pct(50), 1),
            "p99_ms": round(pct(99), 1),
        }


async def run_agents(
    *,
    hub: str,
    tokens: list[str],
    duration: float,
    interval: float | None = None,
    concurrency: int = 64,
) -> AgentStats:
    """Heartbeat as `len(tokens)` agents for `duration` seconds: each every `interval`
    seconds (random phase), or, with no interval, back to back from `concurrency`
    connections (the rate the hub absorbs)."""
    import aiohttp

    url = hub.rstrip("/") + "/api/v1/agent/heartbeat"
    bodies = [json.dumps({"inventory": agent_inventory(p)}).encode() for p in range(PROFILES)]
    stats = AgentStats(started=time.monotonic())
    deadline = stats.started + duration
    # An agent heartbeating at an interval opens a new connection each time (the hub drops
    # idle keep-alive connections after 5 s); back to back, connections are kept.
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=interval is not None)
    timeout = aiohttp.ClientTimeout(total=60)

    async def beat(session: aiohttp.ClientSession, index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
        started = time.monotonic()
        stats.sent += 1
        try:
            async with session.post(url, data=bodies[index % PROFILES], headers=headers) as reply:
                await reply.read()
                if reply.status == 200:
                    stats.ok += 1
                    stats.latencies.append(time.monotonic() - started)
                else:
                    stats.errors += 1
                    key = str(reply.status)
                    stats.statuses[key] = stats.statuses.get(key, 0) + 1
        except (aiohttp.ClientError, TimeoutError) as error:
            stats.errors += 1
            key = type(error).__name__
            stats.statuses[key] = stats.statuses.get(key, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if interval is None:
            counter = iter(range(10**12))

            async def closed_loop() -> None:
                while time.monotonic() < deadline:
                    await beat(session, next(counter) % len(tokens))

            await asyncio.gather(*(closed_loop() for _ in range(concurrency)))
        else:
            period = interval

            async def agent(index: int) -> None:
                due = stats.started + random.uniform(0, period)  # noqa: S311
                while due < deadline:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if time.monotonic() - due > period:
                        stats.late += 1
                    await beat(session, index)
                    due += period

            await asyncio.gather(*(agent(i) for i in range(len(tokens))))
    stats.finished = time.monotonic()
    return stats


# --- command line ---------------------------------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _main(args: argparse.Namespace) -> int:
    tls = ensure_tls(Path(args.tls_dir))
    simulator = Simulator(args.clusters, tls)
    port = await simulator.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(  # noqa: T201
        json.dumps({"listening": f"https://127.0.0.1:{port}", "port": port, "ca": str(tls.ca)}),
        flush=True,
    )
    agents: asyncio.Task[AgentStats] | None = None
    if args.agent_tokens:
        tokens = Path(args.agent_tokens).read_text().split()
        agents = asyncio.create_task(
            run_agents(
                hub=args.hub,
                tokens=tokens,
                duration=args.agent_duration,
                interval=args.agent_interval or None,
                concurrency=args.agent_concurrency,
            )
        )
        agents.add_done_callback(lambda _: stop.set())
    await stop.wait()
    if agents is not None and agents.done():
        print(json.dumps({"agents": agents.result().summary()}), flush=True)  # noqa: T201
    await simulator.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulator")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--tls-dir", default=os.environ.get("KEELSON_BENCH_TLS_DIR", "var/bench/tls")
    )
    parser.add_argument("--hub", default="http://127.0.0.1:8000")
    parser.add_argument("--agent-tokens", help="a file of agent tokens, one a line")
    parser.add_argument("--agent-interval", type=float, default=0.0, help="0: back to back")
    parser.add_argument("--agent-duration", type=float, default=30.0)
    parser.add_argument("--agent-concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    _raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_main(args))
    return uvloop.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
