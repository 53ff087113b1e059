"""etcd and per-cluster control planes (kube-apiserver, controller-manager, scheduler)."""

from __future__ import annotations

import base64
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s

from localkube import procs
from localkube.binaries import KubeBinaries


class LocalKubeError(Exception):
    """A local control-plane process failed to start or stay up."""


@dataclass
class Etcd:
    """One etcd for many API servers: each cluster lives under its own key prefix."""

    binary: Path
    data_dir: Path
    die_with_parent: bool = True
    client_port: int = 0
    peer_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, *, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.client_port = self.client_port or procs.free_port()
        self.peer_port = self.peer_port or procs.free_port()
        log = self.data_dir.parent / "etcd.log"
        self.process = procs.spawn(
            [
                str(self.binary),
                "--name=keelson",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls=http://127.0.0.1:{self.peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_port}",
                f"--initial-cluster=keelson=http://127.0.0.1:{self.peer_port}",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
            log_path=log,
            die_with_parent=self.die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalKubeError(f"etcd exited at start:\n{procs.log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise LocalKubeError(f"etcd not healthy after {timeout:.0f}s:\n{procs.log_tail(log)}")

    def stop(self) -> None:
        procs.stop(self.process)


def _write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "sa.key", directory / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@dataclass
class ControlPlane:
    """A kube-apiserver (and optionally controller-manager and scheduler) on 127.0.0.1."""

    name: str
    binaries: KubeBinaries
    etcd_url: str
    directory: Path
    controllers: bool = True
    die_with_parent: bool = True
    node_monitor_grace_period: str = "40s"
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # An authenticated user with no RBAC grants, for permission-check tests.
    unprivileged_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "certs" / "apiserver.crt"

    @property
    def kubeconfig_path(self) -> Path:
        return self.directory / "kubeconfig"

    def start(self, *, timeout: float = 90.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "certs").mkdir(exist_ok=True)
        sa_key, sa_pub = _write_service_account_keys(self.directory)
        tokens = self.directory / "tokens.csv"
        tokens.write_text(
            f"{self.token},admin,admin,system:masters\n{self.unprivileged_token},nobody,nobody\n"
        )
        tokens.chmod(0o600)
        self.port = self.port or procs.free_port()
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--etcd-prefix=/{self.name}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.directory / 'certs'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                f"--token-auth-file={tokens}",
                "--allow-privileged=true",
                "--insecure-port=0",
                "--disable-admission-plugins=ServiceAccount",
                "--v=0",
            ],
        )
        self._wait_ready(timeout)
        self.write_kubeconfig()
        if self.controllers:
            self._spawn(
                "kube-controller-manager",
                [
                    str(self.binaries.controller_manager),
                    f"--kubeconfig={self.kubeconfig_path}",
                    "--leader-elect=false",
                    f"--service-account-private-key-file={sa_key}",
                    "--controllers=*,-nodeipam,-serviceaccount-token",
                    f"--node-monitor-grace-period={self.node_monitor_grace_period}",
                    "--port=0",
                    "--secure-port=0",
                ],
            )
            self._spawn(
                "kube-scheduler",
                [
                    str(self.binaries.scheduler),
                    f"--kubeconfig={self.kubeconfig_path}",
                    "--leader-elect=false",
                    "--port=0",
                    "--secure-port=0",
                ],
            )

    def _spawn(self, component: str, args: list[str]) -> None:
        self.processes[component] = procs.spawn(
            args, log_path=self.directory / f"{component}.log", die_with_parent=self.die_with_parent
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        log = self.directory / "kube-apiserver.log"
        while time.monotonic() < deadline:
            apiserver = self.processes["kube-apiserver"]
            if apiserver.poll() is not None:
                raise LocalKubeError(
                    f"kube-apiserver of {self.name} exited at start:\n{procs.log_tail(log)}"
                )
            if self.ca_file.exists() and self.is_ready():
                return
            time.sleep(0.5)
        raise LocalKubeError(
            f"kube-apiserver of {self.name} not ready after {timeout:.0f}s:\n{procs.log_tail(log)}"
        )

    def is_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(  # noqa: S310
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=3, context=context) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def kubeconfig(self) -> dict[str, object]:
        """A self-contained kubeconfig (CA inline) for the admin token."""
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {"server": self.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": f"{self.name}-admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": self.name, "context": {"cluster": self.name, "user": f"{self.name}-admin"}}
            ],
            "current-context": self.name,
        }

    def write_kubeconfig(self) -> Path:
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        self.kubeconfig_path.chmod(0o600)
        return self.kubeconfig_path

    def api_client(self) -> k8s.ApiClient:
        """A client that verifies TLS against the cluster's own CA."""
        configuration = k8s.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.verify_ssl = True
        configuration.api_key = {"authorization": f"Bearer {self.token}"}
        return k8s.ApiClient(configuration)

    def stop_component(self, component: str) -> None:
        """Stop one process (e.g. the API server, to simulate an outage)."""
        procs.stop(self.processes.get(component))

    def restart_apiserver(self, *, timeout: float = 90.0) -> None:
        process = self.processes["kube-apiserver"]
        procs.stop(process)
        self.processes["kube-apiserver"] = procs.spawn(
            list(map(str, process.args)),  # type: ignore[arg-type]
            log_path=self.directory / "kube-apiserver.log",
            die_with_parent=self.die_with_parent,
        )
        self._wait_ready(timeout)

    def stop(self) -> None:
        for component in ("kube-scheduler", "kube-controller-manager", "kube-apiserver"):
            procs.stop(self.processes.get(component))
