"""Collecting a cluster's inventory and health signals through its API server."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from clusters.kube.client import classify, timeout_kwargs

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
PAGE = 500
RECENT_EVENTS = 20


@dataclass
class Inventory:
    """What one collection saw. Quantities: CPU in millicores, memory in bytes."""

    kubernetes_version: str = ""
    api_latency_ms: float = 0.0
    nodes: list[dict[str, Any]] = field(default_factory=list)
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    workloads: dict[str, dict[str, int]] = field(default_factory=dict)
    pods_by_phase: dict[str, int] = field(default_factory=dict)
    pods_crashlooping: int = 0
    requested_cpu_millis: int = 0
    requested_memory_bytes: int = 0
    warning_events: int = 0
    recent_warnings: list[dict[str, Any]] = field(default_factory=list)
    # Requests of running/pending pods per (node, namespace), for cost allocation.
    allocations: list[dict[str, Any]] = field(default_factory=list)
    # Requested persistent storage per namespace (bytes).
    storage_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def nodes_ready(self) -> int:
        return sum(1 for node in self.nodes if node["ready"])

    def total(self, section: str, resource: str) -> int:
        return sum(int(node[section].get(resource, 0)) for node in self.nodes)

    def as_json(self) -> dict[str, Any]:
        return {
            "kubernetes_version": self.kubernetes_version,
            "api_latency_ms": self.api_latency_ms,
            "nodes": self.nodes,
            "namespaces": self.namespaces,
            "workloads": self.workloads,
            "pods_by_phase": self.pods_by_phase,
            "pods_crashlooping": self.pods_crashlooping,
            "requested_cpu_millis": self.requested_cpu_millis,
            "requested_memory_bytes": self.requested_memory_bytes,
            "warning_events": self.warning_events,
            "recent_warnings": self.recent_warnings,
            "allocations": self.allocations,
            "storage_bytes": self.storage_bytes,
        }


def _millis(value: str | None) -> int:
    return int(parse_quantity(value) * 1000) if value else 0


def _bytes(value: str | None) -> int:
    return int(parse_quantity(value)) if value else 0


def _resources(raw: dict[str, str] | None) -> dict[str, int]:
    raw = raw or {}
    return {
        "cpu_millis": _millis(raw.get("cpu")),
        "memory_bytes": _bytes(raw.get("memory")),
        "gpu": sum(int(parse_quantity(raw[key])) for key in GPU_RESOURCES if key in raw),
        "pods": int(parse_quantity(raw.get("pods", "0"))),
    }


def _paged(list_call: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = list_call(limit=PAGE, _continue=token, **kwargs, **timeout_kwargs())
        yield from page.items
        token = page.metadata._continue
        if not token:
            return


def _node(node: Any) -> dict[str, Any]:
    labels = node.metadata.labels or {}
    conditions = {c.type: c for c in (node.status.conditions or [])}
    ready = conditions.get("Ready")
    return {
        "name": node.metadata.name,
        "ready": bool(ready and ready.status == "True"),
        "ready_reason": (ready.reason or "") if ready else "NoReadyCondition",
        "unschedulable": bool(node.spec.unschedulable),
        "kubelet_version": node.status.node_info.kubelet_version if node.status.node_info else "",
        "instance_type": labels.get("node.kubernetes.io/instance-type")
        or labels.get("beta.kubernetes.io/instance-type", ""),
        "region": labels.get("topology.kubernetes.io/region", ""),
        "zone": labels.get("topology.kubernetes.io/zone", ""),
        "capacity": _resources(node.status.capacity),
        "allocatable": _resources(node.status.allocatable),
        "taints": [
            {"key": t.key, "value": t.value or "", "effect": t.effect}
            for t in (node.spec.taints or [])
        ],
    }


def _pod_requests(pod: Any) -> tuple[int, int, int]:
    """Effective requests as the scheduler counts them: max(sum of containers, any init).
    GPUs are counted from limits (extended resources are set as limits)."""
    containers = pod.spec.containers
    cpu = sum(_millis((c.resources.requests or {}).get("cpu")) for c in containers)
    memory = sum(_bytes((c.resources.requests or {}).get("memory")) for c in containers)
    gpu = sum(
        int(parse_quantity(limits[key]))
        for c in containers
        for limits in [c.resources.limits or {}]
        for key in GPU_RESOURCES
        if key in limits
    )
    for init in pod.spec.init_containers or []:
        requests = init.resources.requests or {}
        cpu = max(cpu, _millis(requests.get("cpu")))
        memory = max(memory, _bytes(requests.get("memory")))
    return cpu, memory, gpu


def _crashlooping(pod: Any) -> bool:
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason in ("CrashLoopBackOff", "Error"):
            return True
    return False


def _storage(core: k8s.CoreV1Api) -> dict[str, int]:
    """Requested PVC storage per namespace; empty when the credentials may not list PVCs."""
    totals: Counter[str] = Counter()
    try:
        for claim in _paged(core.list_persistent_volume_claim_for_all_namespaces):
            requests = (claim.spec.resources.requests or {}) if claim.spec.resources else {}
            totals[claim.metadata.namespace] += _bytes(requests.get("storage"))
    except ApiException as error:
        if error.status != 403:
            raise
    return dict(totals)


def collect(api: k8s.ApiClient, server: str = "") -> Inventory:
    """One full pass; raises ClusterConnectError if the cluster cannot be read."""
    try:
        return _collect(api)
    except Exception as error:
        raise classify(error, server) from None


def _collect(api: k8s.ApiClient) -> Inventory:
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    inventory = Inventory()
    started = time.perf_counter()
    inventory.kubernetes_version = k8s.VersionApi(api).get_code(**timeout_kwargs()).git_version
    inventory.api_latency_ms = round((time.perf_counter() - started) * 1000, 2)

    inventory.nodes = [_node(node) for node in _paged(core.list_node)]
    inventory.namespaces = [
        {"name": ns.metadata.name, "phase": ns.status.phase or ""}
        for ns in _paged(core.list_namespace)
    ]
    workloads: dict[str, dict[str, int]] = {}
    for kind, call in (
        ("deployments", apps.list_deployment_for_all_namespaces),
        ("statefulsets", apps.list_stateful_set_for_all_namespaces),
        ("daemonsets", apps.list_daemon_set_for_all_namespaces),
    ):
        counter: Counter[str] = Counter()
        for item in _paged(call):
            counter["total"] += 1
            status = item.status
            if kind == "daemonsets":
                unavailable = (status.number_unavailable or 0) > 0
            else:
                unavailable = (status.ready_replicas or 0) < (item.spec.replicas or 0)
            counter["unavailable"] += int(unavailable)
        workloads[kind] = {"total": counter["total"], "unavailable": counter["unavailable"]}
    inventory.workloads = workloads

    phases: Counter[str] = Counter()
    cpu = memory = crashlooping = 0
    per_node: dict[tuple[str, str], list[int]] = {}
    for pod in _paged(core.list_pod_for_all_namespaces):
        phase = pod.status.phase or "Unknown"
        phases[phase] += 1
        if phase in ("Pending", "Running", "Unknown"):
            pod_cpu, pod_memory, pod_gpu = _pod_requests(pod)
            cpu, memory = cpu + pod_cpu, memory + pod_memory
            crashlooping += int(_crashlooping(pod))
            key = (pod.spec.node_name or "", pod.metadata.namespace or "")
            totals = per_node.setdefault(key, [0, 0, 0])
            totals[0], totals[1], totals[2] = (
                totals[0] + pod_cpu,
                totals[1] + pod_memory,
                totals[2] + pod_gpu,
            )
    inventory.allocations = [
        {"node": node, "namespace": ns, "cpu_millis": t[0], "memory_bytes": t[1], "gpu": t[2]}
        for (node, ns), t in sorted(per_node.items())
    ]
    inventory.storage_bytes = _storage(core)
    inventory.pods_by_phase = dict(phases)
    inventory.requested_cpu_millis, inventory.requested_memory_bytes = cpu, memory
    inventory.pods_crashlooping = crashlooping

    warnings = list(_paged(core.list_event_for_all_namespaces, field_selector="type=Warning"))
    inventory.warning_events = len(warnings)
    warnings.sort(key=lambda e: str(e.last_timestamp or e.event_time or ""), reverse=True)
    inventory.recent_warnings = [
        {
            "namespace": event.metadata.namespace or "",
            "object": f"{event.involved_object.kind}/{event.involved_object.name}",
            "reason": event.reason or "",
            "message": (event.message or "")[:300],
            "count": event.count or 1,
            "last_seen": str(event.last_timestamp or event.event_time or ""),
        }
        for event in warnings[:RECENT_EVENTS]
    ]
    return inventory


def quantity(value: str) -> Decimal:
    return Decimal(parse_quantity(value))


def inventory_from_json(data: Any) -> Inventory:
    """Rebuild an agent's report, refusing anything that is not the expected shape."""
    if not isinstance(data, dict):
        raise ValueError("inventory must be an object")
    inventory = Inventory()
    numbers = (
        "api_latency_ms",
        "pods_crashlooping",
        "requested_cpu_millis",
        "requested_memory_bytes",
        "warning_events",
    )
    for name in numbers:
        value = data.get(name, 0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"inventory.{name} must be a non-negative number")
        setattr(inventory, name, type(getattr(inventory, name))(value))
    inventory.kubernetes_version = str(data.get("kubernetes_version", ""))[:32]
    for name in ("nodes", "namespaces", "recent_warnings"):
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValueError(f"inventory.{name} must be a list of objects")
        setattr(inventory, name, value)
    for node in inventory.nodes:
        if not isinstance(node.get("name"), str) or not isinstance(node.get("ready"), bool):
            raise ValueError("inventory.nodes[] need a name and a boolean ready")
        for section in ("capacity", "allocatable"):
            resources = node.get(section, {})
            if not isinstance(resources, dict) or not all(
                isinstance(v, int) and v >= 0 for v in resources.values()
            ):
                raise ValueError(f"inventory.nodes[].{section} must map to non-negative integers")
            node[section] = resources
    allocations = data.get("allocations", [])
    if not isinstance(allocations, list) or not all(
        isinstance(a, dict)
        and isinstance(a.get("node"), str)
        and isinstance(a.get("namespace"), str)
        and all(
            isinstance(a.get(k), int) and a[k] >= 0 for k in ("cpu_millis", "memory_bytes", "gpu")
        )
        for a in allocations
    ):
        raise ValueError(
            "inventory.allocations must be a list of {node, namespace, cpu_millis, ...}"
        )
    inventory.allocations = allocations
    storage = data.get("storage_bytes", {})
    if not isinstance(storage, dict) or not all(
        isinstance(v, int) and v >= 0 for v in storage.values()
    ):
        raise ValueError("inventory.storage_bytes must map namespaces to byte counts")
    inventory.storage_bytes = storage
    for name in ("workloads", "pods_by_phase"):
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise ValueError(f"inventory.{name} must be an object")
        setattr(inventory, name, value)
    if not all(isinstance(v, int) and v >= 0 for v in inventory.pods_by_phase.values()):
        raise ValueError("inventory.pods_by_phase must map phases to counts")
    return inventory
