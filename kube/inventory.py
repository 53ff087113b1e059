"""Collecting a cluster's inventory and health signals through its API server."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from kube import pod_minutes
from kube.client import classify, get_json

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
    # Bound persistent storage per namespace (bytes): what exists, not what is asked for.
    storage_bytes: dict[str, int] = field(default_factory=dict)
    # Bound volumes per (namespace, storage class): [{namespace, storage_class, bytes}].
    volumes: list[dict[str, Any]] = field(default_factory=list)
    # Services of type LoadBalancer per namespace (each one a provider's load balancer).
    load_balancers: dict[str, int] = field(default_factory=dict)
    # False when only health was read (no namespaces, workloads, storage): not stored as
    # the cluster's inventory.
    full: bool = True
    # Whether `allocations` carry usage read from metrics.k8s.io (set by a full collection).
    usage: bool = False
    # Requests of each pod on a node, (namespace, name) -> (its allocation row's key, cpu
    # millis, memory bytes): what usage is joined with. Not stored.
    pod_requests: dict[tuple[str, str], tuple[tuple[str, ...], int, int]] = field(
        default_factory=dict, repr=False
    )
    # The `partial` entry of each running pod that started within the hour before the
    # collection (pod_minutes), (namespace, name) -> entry: usage is added to it. Not stored.
    pod_windows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)

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
            "volumes": self.volumes,
            "usage": self.usage,
            "load_balancers": self.load_balancers,
        }


@lru_cache(maxsize=4096)
def _parsed(value: str) -> Decimal:
    """Quantities repeat ("250m", "64Mi"): parse each spelling once per process."""
    return Decimal(parse_quantity(value))


def _millis(value: str | None) -> int:
    return int(_parsed(value) * 1000) if value else 0


def _bytes(value: str | None) -> int:
    return int(_parsed(value)) if value else 0


NODE_RESOURCES = ("cpu_millis", "memory_bytes", "gpu", "pods")


def _resources(raw: dict[str, str] | None) -> dict[str, int]:
    raw = raw or {}
    return {
        "cpu_millis": _millis(raw.get("cpu")),
        "memory_bytes": _bytes(raw.get("memory")),
        "gpu": sum(int(_parsed(raw[key])) for key in GPU_RESOURCES if key in raw),
        "pods": int(_parsed(raw.get("pods", "0"))),
    }


def _paged(api: k8s.ApiClient, path: str, **query: str) -> Iterator[dict[str, Any]]:
    """Every item of a list, as plain JSON objects, page by page."""
    token = ""
    while True:
        paging = {"limit": str(PAGE), "continue": token} if token else {"limit": str(PAGE)}
        page = get_json(api, path, {**query, **paging})
        yield from page.get("items") or ()
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def _node(node: dict[str, Any]) -> dict[str, Any]:
    metadata, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    labels = metadata.get("labels") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or ()}
    ready = conditions.get("Ready")
    return {
        "name": metadata["name"],
        "ready": bool(ready and ready.get("status") == "True"),
        "ready_reason": (ready.get("reason") or "") if ready else "NoReadyCondition",
        "unschedulable": bool(spec.get("unschedulable")),
        "kubelet_version": (status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        "instance_type": labels.get("node.kubernetes.io/instance-type")
        or labels.get("beta.kubernetes.io/instance-type", ""),
        "region": labels.get("topology.kubernetes.io/region", ""),
        "spot": is_spot(labels),
        "zone": labels.get("topology.kubernetes.io/zone", ""),
        "capacity": _resources(status.get("capacity")),
        "allocatable": _resources(status.get("allocatable")),
        "taints": [
            {"key": t.get("key"), "value": t.get("value") or "", "effect": t.get("effect")}
            for t in spec.get("taints") or ()
        ],
    }


# Node labels by which EKS, GKE and AKS mark spot (and GKE preemptible) capacity.
SPOT_LABELS = {
    "eks.amazonaws.com/capacityType": "SPOT",
    "karpenter.sh/capacity-type": "spot",
    "cloud.google.com/gke-spot": "true",
    "cloud.google.com/gke-preemptible": "true",
    "kubernetes.azure.com/scalesetpriority": "spot",
}


def is_spot(labels: dict[str, str]) -> bool:
    """Whether the provider's labels say the node is spot (or preemptible) capacity."""
    return any(labels.get(key) == value for key, value in SPOT_LABELS.items())


# Labels a controller sets per pod or per revision: not the workload's own labels.
VOLATILE_LABELS = (
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "controller-uid",
    "pod-template-generation",
)


def controller_of(metadata: dict[str, Any]) -> str:
    """The pod's controller as `Kind/name`, as OpenCost names it: a ReplicaSet created by
    a Deployment (its name is the Deployment's plus `-<pod-template-hash>`) counts as that
    Deployment; a pod without a controller owner is "" (a bare pod)."""
    for owner in metadata.get("ownerReferences") or ():
        if not owner.get("controller"):
            continue
        kind, name = owner.get("kind") or "", owner.get("name") or ""
        template_hash = (metadata.get("labels") or {}).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
            return f"Deployment/{name[: -len(template_hash) - 1]}"
        return f"{kind}/{name}"
    return ""


def _stable_labels(metadata: dict[str, Any]) -> dict[str, str]:
    labels = metadata.get("labels") or {}
    return {k: v for k, v in labels.items() if k not in VOLATILE_LABELS}


def _pod_requests(spec: dict[str, Any]) -> tuple[int, int, int]:
    """Effective requests as the scheduler counts them: max(sum of containers, any init).
    GPUs are counted from limits (extended resources are set as limits)."""
    cpu = memory = gpu = 0
    for container in spec.get("containers") or ():
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        cpu += _millis(requests.get("cpu"))
        memory += _bytes(requests.get("memory"))
        limits = resources.get("limits") or {}
        gpu += sum(int(_parsed(limits[key])) for key in GPU_RESOURCES if key in limits)
    for init in spec.get("initContainers") or ():
        requests = (init.get("resources") or {}).get("requests") or {}
        cpu = max(cpu, _millis(requests.get("cpu")))
        memory = max(memory, _bytes(requests.get("memory")))
    return cpu, memory, gpu


def _row_key(spec: dict[str, Any], metadata: dict[str, Any]) -> tuple[str, str, str, str]:
    """A pod's allocation row: (node, namespace, controller, its stable labels as JSON)."""
    labels = json.dumps(_stable_labels(metadata), sort_keys=True)
    namespace = metadata.get("namespace") or ""
    return (spec.get("nodeName") or "", namespace, controller_of(metadata), labels)


def _crashlooping(status: dict[str, Any]) -> bool:
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting")
        if waiting is not None and waiting.get("reason") in ("CrashLoopBackOff", "Error"):
            return True
    return False


def _storage(api: k8s.ApiClient) -> list[dict[str, Any]]:
    """Bound PVC storage per namespace and storage class (a Pending claim has no volume
    and costs nothing); the size is the bound volume's capacity. Empty when the
    credentials may not list PVCs."""
    totals: Counter[tuple[str, str]] = Counter()
    try:
        for claim in _paged(api, "/api/v1/persistentvolumeclaims"):
            spec, status = claim.get("spec") or {}, claim.get("status") or {}
            if status.get("phase") != "Bound":
                continue
            size = (status.get("capacity") or {}).get("storage") or (
                (spec.get("resources") or {}).get("requests") or {}
            ).get("storage")
            key = (claim["metadata"].get("namespace", ""), spec.get("storageClassName") or "")
            totals[key] += _bytes(size)
    except ApiException as error:
        if error.status != 403:
            raise
    return [
        {"namespace": namespace, "storage_class": storage_class, "bytes": size}
        for (namespace, storage_class), size in sorted(totals.items())
    ]


def _timestamp(event: dict[str, Any]) -> str:
    """When a warning was last seen, spelled as the client's datetime objects print it."""
    raw = event.get("lastTimestamp") or event.get("eventTime")
    if not raw:
        return ""
    try:
        return str(datetime.fromisoformat(raw))
    except ValueError:
        return str(raw)


def collect(api: k8s.ApiClient, server: str = "", *, full: bool = True) -> Inventory:
    """One pass; raises ClusterConnectError if the cluster cannot be read.

    `full=False` reads only what health needs (version, nodes, pods, warning events:
    four calls instead of nine); `complete` adds the rest later if wanted."""
    try:
        inventory = _collect_health(api)
        if full:
            _complete(api, inventory)
        return inventory
    except Exception as error:
        raise classify(error, server) from None


def complete(api: k8s.ApiClient, inventory: Inventory, server: str = "") -> None:
    """Add namespaces, workloads and storage to a health-only inventory."""
    try:
        _complete(api, inventory)
    except Exception as error:
        raise classify(error, server) from None


def _collect_health(api: k8s.ApiClient) -> Inventory:
    inventory = Inventory(full=False)
    started = time.perf_counter()
    inventory.kubernetes_version = get_json(api, "/version/").get("gitVersion", "")
    inventory.api_latency_ms = round((time.perf_counter() - started) * 1000, 2)
    inventory.nodes = [_node(node) for node in _paged(api, "/api/v1/nodes")]

    phases: Counter[str] = Counter()
    cpu = memory = crashlooping = 0
    per_node: dict[tuple[str, str, str, str], list[int]] = {}
    partial: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    now = datetime.now(UTC)
    for pod in _paged(api, "/api/v1/pods"):
        status, spec = pod.get("status") or {}, pod.get("spec") or {}
        phase = status.get("phase") or "Unknown"
        phases[phase] += 1
        ran = pod_minutes.window(status, phase, now) if spec.get("nodeName") else None
        if ran is not None:  # it may have run part of the hour: its minutes count
            metadata = pod["metadata"]
            key = _row_key(spec, metadata)
            ran.update(zip(pod_minutes.FIELDS, _pod_requests(spec), strict=True))
            partial.setdefault(key, []).append(ran)
            per_node.setdefault(key, [0, 0, 0])  # an ended pod's row, if its only one
            if "ended" not in ran:
                inventory.pod_windows[(key[1], metadata.get("name") or "")] = ran
        if phase in ("Pending", "Running", "Unknown"):
            pod_cpu, pod_memory, pod_gpu = _pod_requests(spec)
            cpu, memory = cpu + pod_cpu, memory + pod_memory
            crashlooping += int(_crashlooping(status))
            metadata = pod["metadata"]
            key = _row_key(spec, metadata)
            node, namespace = key[0], key[1]
            if node:
                name = (namespace, metadata.get("name") or "")
                inventory.pod_requests[name] = (key, pod_cpu, pod_memory)
            totals = per_node.setdefault(key, [0, 0, 0])
            totals[0], totals[1], totals[2] = (
                totals[0] + pod_cpu,
                totals[1] + pod_memory,
                totals[2] + pod_gpu,
            )
    inventory.allocations = [
        {
            "node": node,
            "namespace": ns,
            "controller": controller,
            "labels": json.loads(labels),
            "cpu_millis": t[0],
            "memory_bytes": t[1],
            "gpu": t[2],
            **({"partial": partial[key]} if key in partial else {}),
        }
        for key, t in sorted(per_node.items())
        for (node, ns, controller, labels) in [key]
    ]
    inventory.pods_by_phase = dict(phases)
    inventory.requested_cpu_millis, inventory.requested_memory_bytes = cpu, memory
    inventory.pods_crashlooping = crashlooping

    warnings = list(_paged(api, "/api/v1/events", fieldSelector="type=Warning"))
    inventory.warning_events = len(warnings)
    stamped = sorted(((_timestamp(e), e) for e in warnings), key=lambda p: p[0], reverse=True)
    inventory.recent_warnings = [
        {
            "namespace": event["metadata"].get("namespace") or "",
            "object": f"{involved.get('kind')}/{involved.get('name')}",
            "reason": event.get("reason") or "",
            "message": (event.get("message") or "")[:300],
            "count": event.get("count") or 1,
            "last_seen": when,
        }
        for when, event in stamped[:RECENT_EVENTS]
        for involved in [event.get("involvedObject") or {}]
    ]
    return inventory


def _complete(api: k8s.ApiClient, inventory: Inventory) -> None:
    inventory.namespaces = [
        {
            "name": ns["metadata"]["name"],
            "phase": (ns.get("status") or {}).get("phase") or "",
            "labels": ns["metadata"].get("labels") or {},
        }
        for ns in _paged(api, "/api/v1/namespaces")
    ]
    workloads: dict[str, dict[str, int]] = {}
    for kind in ("deployments", "statefulsets", "daemonsets"):
        counter: Counter[str] = Counter()
        for item in _paged(api, f"/apis/apps/v1/{kind}"):
            counter["total"] += 1
            status = item.get("status") or {}
            if kind == "daemonsets":
                unavailable = (status.get("numberUnavailable") or 0) > 0
            else:
                wanted = (item.get("spec") or {}).get("replicas") or 0
                unavailable = (status.get("readyReplicas") or 0) < wanted
            counter["unavailable"] += int(unavailable)
        workloads[kind] = {"total": counter["total"], "unavailable": counter["unavailable"]}
    inventory.workloads = workloads
    inventory.volumes = _storage(api)
    per_namespace: Counter[str] = Counter()
    for volume in inventory.volumes:
        per_namespace[volume["namespace"]] += volume["bytes"]
    inventory.storage_bytes = dict(per_namespace)
    balancers: Counter[str] = Counter(
        service["metadata"].get("namespace") or ""
        for service in _paged(api, "/api/v1/services")
        if (service.get("spec") or {}).get("type") == "LoadBalancer"
    )
    inventory.load_balancers = dict(sorted(balancers.items()))
    if METRICS_GROUP in {g.get("name") for g in get_json(api, "/apis").get("groups") or ()}:
        _add_usage(api, inventory)
    inventory.full = True


METRICS_GROUP = "metrics.k8s.io"
METRICS_PODS = "/apis/metrics.k8s.io/v1beta1/pods"


def _add_usage(api: k8s.ApiClient, inventory: Inventory) -> None:
    """Add CPU and memory usage (metrics-server's recent average) to each (node,
    namespace) allocation row, and what is charged: the sum over its running pods of
    max(request, usage) per resource (OpenCost charges each pod the larger). A running pod
    without a metric yet (just started) counts as using its request. A metrics API that
    does not answer (metrics-server down, no permission) leaves the inventory without usage:
    requests are charged, as before."""
    usage: dict[tuple[str, str], tuple[int, int]] = {}
    try:
        for pod in get_json(api, METRICS_PODS).get("items") or ():
            metadata = pod.get("metadata") or {}
            cpu = memory = 0
            for container in pod.get("containers") or ():
                measured = container.get("usage") or {}
                cpu += _millis(measured.get("cpu"))
                memory += _bytes(measured.get("memory"))
            usage[(metadata.get("namespace") or "", metadata.get("name") or "")] = (cpu, memory)
    except ApiException as error:
        if error.status in (401, 403, 404, 500, 502, 503):
            return
        raise
    sums: dict[tuple[str, ...], list[int]] = {}
    for pod, (key, cpu_request, memory_request) in inventory.pod_requests.items():
        cpu_used, memory_used = usage.get(pod, (cpu_request, memory_request))
        row = sums.setdefault(key, [0, 0, 0, 0])
        measured = (
            cpu_used,
            memory_used,
            max(cpu_request, cpu_used),
            max(memory_request, memory_used),
        )
        for index, value in enumerate(measured):
            row[index] += value
        if pod in inventory.pod_windows:  # its own, for its minutes
            inventory.pod_windows[pod].update(zip(pod_minutes.USAGE_FIELDS, measured, strict=True))
    for allocation in inventory.allocations:
        labels = json.dumps(allocation["labels"], sort_keys=True)
        key = (allocation["node"], allocation["namespace"], allocation["controller"], labels)
        measured = sums.get(key)
        if measured is None:
            continue  # only pending pods on that node (or none running): nothing to measure
        (
            allocation["cpu_usage_millis"],
            allocation["memory_usage_bytes"],
            allocation["cpu_charged_millis"],
            allocation["memory_charged_bytes"],
        ) = measured
    inventory.usage = True


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


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
            # Exactly the resources a pushed inventory has (`_resources`), absent ones 0:
            # pages, cost and placement read every one of them.
            node[section] = {key: resources.get(key, 0) for key in NODE_RESOURCES}
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
    optional = (
        "cpu_usage_millis",
        "memory_usage_bytes",
        "cpu_charged_millis",
        "memory_charged_bytes",
    )
    if not all(
        isinstance(a[k], int) and not isinstance(a[k], bool) and a[k] >= 0
        for a in allocations
        for k in optional
        if k in a
    ):
        raise ValueError("inventory.allocations[] usage must be non-negative integers")
    for a in allocations:
        a.setdefault("controller", "")
        a.setdefault("labels", {})
        if not isinstance(a["controller"], str) or not _string_map(a["labels"]):
            raise ValueError("inventory.allocations[] controller is a string, labels a map")
        if "partial" in a and not pod_minutes.valid_partial(a["partial"]):
            raise ValueError("inventory.allocations[].partial: {started, ended?, requests}")
    inventory.allocations = allocations
    inventory.usage = data.get("usage") is True
    storage = data.get("storage_bytes", {})
    if not isinstance(storage, dict) or not all(
        isinstance(v, int) and v >= 0 for v in storage.values()
    ):
        raise ValueError("inventory.storage_bytes must map namespaces to byte counts")
    inventory.storage_bytes = storage
    balancers = data.get("load_balancers", {})
    if not isinstance(balancers, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in balancers.values()
    ):
        raise ValueError("inventory.load_balancers must map namespaces to counts")
    inventory.load_balancers = balancers
    volumes = data.get("volumes", [])
    if not isinstance(volumes, list) or not all(
        isinstance(v, dict)
        and isinstance(v.get("namespace"), str)
        and isinstance(v.get("storage_class"), str)
        and isinstance(v.get("bytes"), int)
        and not isinstance(v.get("bytes"), bool)
        and v["bytes"] >= 0
        for v in volumes
    ):
        raise ValueError("inventory.volumes must be a list of {namespace, storage_class, bytes}")
    inventory.volumes = [
        {"namespace": v["namespace"], "storage_class": v["storage_class"], "bytes": v["bytes"]}
        for v in volumes
    ]
    for name in ("workloads", "pods_by_phase"):
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise ValueError(f"inventory.{name} must be an object")
        setattr(inventory, name, value)
    if not all(isinstance(v, int) and v >= 0 for v in inventory.pods_by_phase.values()):
        raise ValueError("inventory.pods_by_phase must map phases to counts")
    return inventory
