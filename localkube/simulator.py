"""A node simulator in the spirit of kwok: the kubelets this host cannot run.

It registers Node objects with the capacity of their instance type, keeps their Ready
condition and their Lease in `kube-node-lease` fresh, moves pods bound to them to
Running with Ready conditions and container statuses, and finalizes deleted pods (what a
kubelet does). Told to, it stops heartbeating a node (the real node-lifecycle controller
then marks it NotReady and taints it) or makes a pod's containers crash-loop
(also any pod annotated `localkube.keelson.io/simulate: crashloop`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

KUBELET_VERSION = "v1.20.2"
LEASE_NAMESPACE = "kube-node-lease"
SIMULATED_LABEL = "keelson.io/simulated-node"
IMAGE_LABEL = "keelson.io/node-image"
DEFAULT_OS_IMAGE = "Keelson simulated node"
# A pod annotated `localkube.keelson.io/simulate: crashloop` crash-loops from the start, as
# a broken image would (how tests and demos get a release whose health gate fails).
SIMULATE_ANNOTATION = "localkube.keelson.io/simulate"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu: str = "4"
    memory: str = "16Gi"
    pods: str = "110"
    gpu: str = "0"
    ephemeral_storage: str = "100Gi"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    kubelet_version: str = KUBELET_VERSION
    # The node image ("" for the default), reported as the OS image and a label.
    image: str = ""

    def node_labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            SIMULATED_LABEL: "true",
            **self.labels,
        }
        if self.image:
            labels[IMAGE_LABEL] = self.image
        return labels

    def capacity(self) -> dict[str, str]:
        capacity = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "ephemeral-storage": self.ephemeral_storage,
        }
        if self.gpu not in ("", "0"):
            capacity["nvidia.com/gpu"] = self.gpu
        return capacity


def _now() -> datetime:
    return datetime.now(UTC)


def _ready_conditions(ready: bool, now: datetime) -> list[dict[str, Any]]:
    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "simulated"),
        condition(
            "Ready",
            "True" if ready else "False",
            "KubeletReady" if ready else "KubeletNotReady",
            "simulated kubelet is posting ready status" if ready else "simulated failure",
        ),
    ]


class NodeSimulator:
    """Simulates the kubelets of `nodes` in one cluster, from a background thread."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        nodes: list[NodeSpec],
        *,
        tick: float = 0.5,
        # Well inside the node controller's grace period, even on a loaded host (a late
        # renewal must not make a healthy node NotReady).
        lease_interval: float = 4.0,
        status_interval: float = 30.0,
    ) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.coordination = k8s.CoordinationV1Api(api_client)
        self.nodes = {spec.name: spec for spec in nodes}
        self.tick = tick
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self._down: set[str] = set()
        self._failing_pods: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lease = 0.0
        self._last_status = 0.0
        self._pod_ips: dict[str, str] = {}
        self._next_ip: dict[str, int] = {}
        self.errors = 0

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        for spec in self.nodes.values():
            self._register(spec)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def add_node(self, spec: NodeSpec) -> None:
        """Start simulating `spec`; a node already simulated takes the new spec (labels,
        capacity, versions) as a kubelet restarted with a new configuration would."""
        with self._lock:
            self.nodes[spec.name] = spec
        self._register(spec)

    def remove_node(self, name: str) -> None:
        with self._lock:
            self.nodes.pop(name, None)
            self._down.discard(name)
        for call in (
            lambda: self.core.delete_node(name),
            lambda: self.coordination.delete_namespaced_lease(name, LEASE_NAMESPACE),
        ):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise

    # --- failure injection ---------------------------------------------------------------
    def fail_node(self, name: str) -> None:
        """Stop heartbeating `name`, as if its kubelet died."""
        with self._lock:
            self._down.add(name)

    def recover_node(self, name: str) -> None:
        with self._lock:
            self._down.discard(name)
        self._post_status(self.nodes[name], ready=True)
        self._renew_lease(name)

    def fail_pod(self, namespace: str, name: str) -> None:
        """Make the pod's containers crash-loop (not ready, restarting)."""
        with self._lock:
            self._failing_pods.add((namespace, name))
        self._sync_pods(force={(namespace, name)})

    def heal_pod(self, namespace: str, name: str) -> None:
        with self._lock:
            self._failing_pods.discard((namespace, name))
        self._sync_pods(force={(namespace, name)})

    # --- node side -----------------------------------------------------------------------
    def _register(self, spec: NodeSpec) -> None:
        labels = spec.node_labels()
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {"taints": list(spec.taints)} if spec.taints else {},
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_node(spec.name, {"metadata": {"labels": labels}})
        self._post_status(spec, ready=True)
        self._renew_lease(spec.name)

    def _post_status(self, spec: NodeSpec, *, ready: bool) -> None:
        index = list(self.nodes).index(spec.name) if spec.name in self.nodes else 0
        now = _now()
        status = {
            "capacity": spec.capacity(),
            "allocatable": spec.capacity(),
            "conditions": _ready_conditions(ready, now),
            "addresses": [
                {"type": "InternalIP", "address": f"10.240.{index // 250}.{index % 250 + 1}"},
                {"type": "Hostname", "address": spec.name},
            ],
            "nodeInfo": {
                "kubeletVersion": spec.kubelet_version,
                "kubeProxyVersion": spec.kubelet_version,
                "containerRuntimeVersion": "simulated://1.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": spec.image or DEFAULT_OS_IMAGE,
                "kernelVersion": "5.10.0",
                "machineID": spec.name,
                "systemUUID": spec.name,
                "bootID": spec.name,
            },
        }
        self.core.patch_node_status(spec.name, {"status": status})

    def _renew_lease(self, name: str) -> None:
        now = _now()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
        }
        try:
            self.coordination.patch_namespaced_lease(name, LEASE_NAMESPACE, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease(LEASE_NAMESPACE, body)

    # --- pod side ------------------------------------------------------------------------
    def _pod_ip(self, node: str, pod_uid: str) -> str:
        if pod_uid not in self._pod_ips:
            node_index = list(self.nodes).index(node) if node in self.nodes else 0
            n = self._next_ip.get(node, 0) + 2
            self._next_ip[node] = n - 1
            network = ipaddress.ip_network("10.244.0.0/16")
            self._pod_ips[pod_uid] = str(network[node_index * 256 + n % 254])
        return self._pod_ips[pod_uid]

    def _pod_status(self, pod: Any, *, failing: bool) -> dict[str, Any]:
        now = _now()
        started = pod.status.start_time or now
        ready = "False" if failing else "True"
        containers = []
        for container in pod.spec.containers:
            previous = next(
                (s for s in pod.status.container_statuses or [] if s.name == container.name), None
            )
            restarts = previous.restart_count if previous else 0
            if failing:
                state: dict[str, Any] = {
                    "waiting": {"reason": "CrashLoopBackOff", "message": "simulated crash"}
                }
                restarts += 1
            else:
                state = {"running": {"startedAt": started}}
            containers.append(
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": f"simulated://{container.image}",
                    "containerID": f"simulated://{pod.metadata.uid}-{container.name}",
                    "ready": not failing,
                    "started": not failing,
                    "restartCount": restarts,
                    "state": state,
                }
            )

        def condition(kind: str, status: str) -> dict[str, Any]:
            return {"type": kind, "status": status, "lastTransitionTime": now}

        return {
            "phase": "Running",
            "hostIP": "10.240.0.1",
            "podIP": self._pod_ip(pod.spec.node_name, pod.metadata.uid),
            "startTime": started,
            "conditions": [
                condition("Initialized", "True"),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", "True"),
            ],
            "containerStatuses": containers,
        }

    def _sync_pods(self, force: set[tuple[str, str]] | None = None) -> None:
        with self._lock:
            healthy = set(self.nodes) - self._down
            failing = set(self._failing_pods)
        pods = self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items
        for pod in pods:
            if pod.spec.node_name not in healthy:
                continue
            key = (pod.metadata.namespace, pod.metadata.name)
            try:
                if pod.metadata.deletion_timestamp is not None:
                    # What the kubelet does once containers are gone: finish the deletion.
                    self.core.delete_namespaced_pod(
                        pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                    )
                    continue
                annotations = pod.metadata.annotations or {}
                is_failing = key in failing or annotations.get(SIMULATE_ANNOTATION) == "crashloop"
                running_as_wanted = pod.status.phase == "Running" and (
                    is_failing
                    == any(
                        c.type == "Ready" and c.status == "False"
                        for c in pod.status.conditions or []
                    )
                )
                if running_as_wanted and not (force and key in force):
                    continue
                self.core.patch_namespaced_pod_status(
                    pod.metadata.name,
                    pod.metadata.namespace,
                    {"status": self._pod_status(pod, failing=is_failing)},
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    # --- loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            try:
                now = time.monotonic()
                with self._lock:
                    healthy = [spec for name, spec in self.nodes.items() if name not in self._down]
                if now - self._last_lease >= self.lease_interval:
                    for spec in healthy:
                        self._renew_lease(spec.name)
                    self._last_lease = now
                if now - self._last_status >= self.status_interval:
                    for spec in healthy:
                        self._post_status(spec, ready=True)
                    self._last_status = now
                self._sync_pods()
            except Exception:
                # The API server may be restarting (chaos tests): keep simulating.
                self.errors += 1
                logger.debug("node simulator tick failed", exc_info=True)
            self._stop.wait(self.tick)
