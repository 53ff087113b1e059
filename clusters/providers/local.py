"""The `local` provider: a real control plane on this host, simulated nodes per node pool.

Each cluster is a supervisor process (localkube.supervisor) under
KEELSON_LOCAL_CLUSTERS_DIR/<name>/, started detached so it outlives the worker. Every
step is idempotent: a redelivered task finds the directory, the running supervisor and
the stored credential, and carries on from there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from kubernetes import client as k8s

from clusters.choices import CredentialKind
from clusters.models import Cluster, ClusterCredential
from clusters.providers.base import ActionContext, Capabilities, ClusterSpec, NodePool
from clusters.providers.catalog import INSTANCE_TYPES
from clusters.services.credentials import credential_store
from core.celery import PermanentError, TransientError
from kube.client import build_api_client, timeout_kwargs
from kube.kubeconfig import connection_from_kubeconfig
from localkube import procs
from localkube.binaries import KubeBinariesMissing, find_binaries
from localkube.runtime import read_progress
from localkube.simulator import KUBELET_VERSION
from localkube.supervisor import (
    SPEC,
    STATE,
    new_spec,
    read_json,
    supervisor_pid,
    write_json,
)

BINARIES_MISSING = "The Kubernetes binaries are not built: run `make kube-binaries`."
START_TIMEOUT = 120.0
NODES_TIMEOUT = 90.0
POOL_LABEL = "keelson.io/node-pool"


def clusters_dir() -> Path:
    return Path(settings.KEELSON_LOCAL_CLUSTERS_DIR)


def pool_token(spec: ClusterSpec, pool: NodePool) -> str:
    """Six hex digits naming what a pool's nodes run (type, image, kubelet version): a
    rolling replacement's new nodes get new names and run beside the ones they replace."""
    what = f"{pool.instance_type}|{pool.image}|{pool.kubelet_version(spec.kubernetes_version)}"
    return hashlib.sha256(what.encode()).hexdigest()[:6]


def node_name(name: str, spec: ClusterSpec, pool: NodePool, index: int) -> str:
    return f"{name}-{pool.name}-{pool_token(spec, pool)}-{index}"


def node_entry(name: str, spec: ClusterSpec, pool: NodePool, index: int) -> dict[str, Any]:
    """One simulated node of `pool` (spec.json's form), with the instance type's capacity."""
    shape = INSTANCE_TYPES[pool.instance_type]
    region = spec.region or "local"
    return {
        "name": node_name(name, spec, pool, index),
        "cpu": shape.cpu,
        "memory": f"{shape.memory_gib}Gi",
        "gpu": shape.gpu,
        "kubelet_version": pool.kubelet_version(spec.kubernetes_version),
        "image": pool.image,
        "labels": {
            "node.kubernetes.io/instance-type": pool.instance_type,
            "topology.kubernetes.io/region": region,
            "topology.kubernetes.io/zone": f"{region}-{'abc'[index % 3]}",
            POOL_LABEL: pool.name,
            **pool.labels,
        },
    }


def node_list(name: str, spec: ClusterSpec) -> list[dict[str, Any]]:
    """The simulated nodes of every pool."""
    return [
        node_entry(name, spec, pool, index)
        for pool in spec.node_pools
        for index in range(pool.count)
    ]


class LocalProvider:
    name = "local"

    def capabilities(self) -> Capabilities:
        try:
            find_binaries()
        except KubeBinariesMissing:
            progress = read_progress()
            return Capabilities(
                provision=False,
                scale=False,
                upgrade=False,
                delete=True,
                unavailable_reason=progress.describe()
                if progress is not None and progress.state != "ready"
                else BINARIES_MISSING,
            )
        # One version: the binaries built on this host. Simulated kubelets can report any
        # version the skew policy allows, so node pools can be replaced (and pinned).
        return Capabilities(upgrade=False, versions=(KUBELET_VERSION,), update_pool=True)

    def validate(self, spec: ClusterSpec) -> None:
        capabilities = self.capabilities()
        if not capabilities.provision:
            raise ValidationError(capabilities.unavailable_reason)
        if spec.kubernetes_version not in capabilities.versions:
            raise ValidationError(
                {
                    "kubernetes_version": "The local provider runs "
                    f"{', '.join(capabilities.versions)} (the binaries built on this host)."
                }
            )
        if spec.node_count > 50:
            raise ValidationError({"node_pools": "The local provider simulates at most 50 nodes."})

    # --- actions -------------------------------------------------------------------------

    def provision(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        directory = clusters_dir() / ctx.cluster.name
        directory.mkdir(parents=True, exist_ok=True)
        if read_json(directory / SPEC) is None:
            write_json(
                directory / SPEC, new_spec(ctx.cluster.name, node_list(ctx.cluster.name, spec))
            )
            ctx.log(f"Cluster directory {directory}")
        ctx.checkpoint()
        ctx.progress(10, "Starting etcd, kube-apiserver, controller-manager and scheduler")
        self._ensure_running(directory)
        self._wait_started(ctx, directory)
        ctx.progress(60, "Control plane ready; registering the cluster")
        api = self._register(ctx, directory)
        ctx.progress(75, f"Waiting for {spec.node_count} nodes to be Ready")
        self._wait_nodes(ctx, api, spec.node_count)
        ctx.progress(95, "Collecting inventory")

    def scale(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        directory = clusters_dir() / ctx.cluster.name
        current = self._spec_file(ctx.cluster)
        current["nodes"] = node_list(ctx.cluster.name, spec)
        write_json(directory / SPEC, current)
        ctx.progress(30, f"Node pools set to {spec.node_count} nodes; waiting for them")
        self._ensure_running(directory)
        self._wait_started(ctx, directory)
        api = self._client(directory)
        self._wait_nodes(ctx, api, spec.node_count)

    def upgrade(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        raise PermanentError("The local provider cannot upgrade: it runs one version.")

    # --- node pools, one node at a time (clusters.services.pool_update) --------------------

    def pool_nodes(self, cluster: Cluster, pool: str) -> list[str]:
        current = self._spec_file(cluster)
        return [n["name"] for n in current["nodes"] if n["labels"].get(POOL_LABEL) == pool]

    def pool_node_name(self, cluster: Cluster, spec: ClusterSpec, pool: str, index: int) -> str:
        return node_name(cluster.name, spec, spec.pool(pool), index)

    def pool_node_add(self, cluster: Cluster, spec: ClusterSpec, pool: str, name: str) -> None:
        directory = clusters_dir() / cluster.name
        current = self._spec_file(cluster)
        if any(n["name"] == name for n in current["nodes"]):
            return
        wanted = spec.pool(pool)
        index = next(
            (i for i in range(wanted.count) if node_name(cluster.name, spec, wanted, i) == name),
            None,
        )
        if index is None:
            raise PermanentError(f"{name} is not a node of pool {pool} as specified.")
        current["nodes"].append(node_entry(cluster.name, spec, wanted, index))
        write_json(directory / SPEC, current)  # the supervisor starts it within seconds
        self._ensure_running(directory)

    def pool_node_remove(self, cluster: Cluster, name: str) -> None:
        directory = clusters_dir() / cluster.name
        current = self._spec_file(cluster)
        kept = [n for n in current["nodes"] if n["name"] != name]
        if len(kept) != len(current["nodes"]):
            write_json(directory / SPEC, current | {"nodes": kept})

    def _spec_file(self, cluster: Cluster) -> dict[str, Any]:
        directory = clusters_dir() / cluster.name
        current = read_json(directory / SPEC)
        if current is None:
            raise PermanentError(f"{directory} holds no cluster: was it deleted?")
        return current

    def delete(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        directory = clusters_dir() / ctx.cluster.name
        ctx.progress(20, "Stopping the control plane and the simulated nodes")
        stop_supervisor(directory)
        ctx.progress(70, "Removing the cluster's data")
        shutil.rmtree(directory, ignore_errors=True)
        ctx.log(f"Removed {directory}")

    # --- steps ---------------------------------------------------------------------------

    def _ensure_running(self, directory: Path) -> None:
        if supervisor_pid(directory) is not None:
            return
        log = (directory / "supervisor.log").open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "localkube", "serve", str(directory)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the worker on purpose
                cwd=str(Path(__file__).resolve().parents[2]),
            )
        finally:
            log.close()
        # Reap it when it exits (no zombie in a long-lived worker); it is not tied to us.
        threading.Thread(target=process.wait, name="reap-supervisor", daemon=True).start()

    def _wait_started(self, ctx: ActionContext, directory: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        seen_pid = False
        while time.monotonic() < deadline:
            ctx.checkpoint()
            state = read_json(directory / STATE)
            if state and state.get("ready"):
                return
            alive = supervisor_pid(directory) is not None
            seen_pid = seen_pid or alive
            if seen_pid and not alive:
                raise PermanentError(
                    "The local control plane exited at start:\n"
                    + procs.log_tail(directory / "supervisor.log", 15)
                )
            time.sleep(1.0)
        raise TransientError(f"The local control plane did not start in {START_TIMEOUT:.0f} s.")

    def _client(self, directory: Path) -> k8s.ApiClient:
        kubeconfig = (directory / "plane" / "kubeconfig").read_text()
        return build_api_client(connection_from_kubeconfig(kubeconfig))

    def _register(self, ctx: ActionContext, directory: Path) -> k8s.ApiClient:
        kubeconfig = (directory / "plane" / "kubeconfig").read_text()
        spec = connection_from_kubeconfig(kubeconfig)
        if not ClusterCredential.objects.filter(cluster=ctx.cluster).exists():
            credential_store(cluster=ctx.cluster, spec=spec, kind=CredentialKind.KUBECONFIG)
            ctx.cluster.api_server_url = spec.server
            ctx.cluster.save(update_fields=["api_server_url", "updated_at"])
            ctx.log(f"Registered {spec.server}")
        return build_api_client(spec)

    def _wait_nodes(self, ctx: ActionContext, api: k8s.ApiClient, count: int) -> None:
        core = k8s.CoreV1Api(api)
        deadline = time.monotonic() + NODES_TIMEOUT
        ready = -1
        while time.monotonic() < deadline:
            ctx.checkpoint()
            try:
                nodes = core.list_node(**timeout_kwargs()).items
            except Exception as error:  # the API server may be settling
                raise TransientError(f"Listing nodes failed: {type(error).__name__}") from None
            now_ready = sum(1 for node in nodes if _ready(node))
            if now_ready != ready:
                ctx.log(f"{now_ready} of {count} nodes Ready ({len(nodes)} registered)")
                ready = now_ready
            if len(nodes) == count and now_ready == count:
                return
            time.sleep(1.0)
        raise TransientError(
            f"Only {ready} of {count} nodes became Ready in {NODES_TIMEOUT:.0f} s."
        )


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def stop_supervisor(directory: Path, *, timeout: float = 30.0) -> None:
    pid = supervisor_pid(directory)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and procs.pid_alive(pid):
        time.sleep(0.2)
    if procs.pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop_all() -> int:
    """Stop every local cluster's processes (data kept): `make run` calls it on exit."""
    root = clusters_dir()
    stopped = 0
    for directory in sorted(root.iterdir()) if root.exists() else []:
        if supervisor_pid(directory) is not None:
            stop_supervisor(directory)
            stopped += 1
    return stopped


def resume_all() -> int:
    """Start the processes of local clusters whose supervisor is not running (after a
    host or `make run` restart). Their credentials stay valid: same ports and token."""
    root = clusters_dir()
    started = 0
    provider = LocalProvider()
    for directory in sorted(root.iterdir()) if root.exists() else []:
        if (directory / SPEC).exists() and supervisor_pid(directory) is None:
            provider._ensure_running(directory)
            started += 1
    return started
