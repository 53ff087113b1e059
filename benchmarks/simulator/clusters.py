"""Everything a simulated cluster answers, by path, and what a simulated pull agent reports."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.simulator import k8s
from benchmarks.simulator.discovery import METRICS_VERSION, discovery
from benchmarks.simulator.shape import (
    GIB,
    INSTANCE_TYPES,
    KUBE_VERSION,
    LEGACY_VERSION,
    MIB,
    Variant,
)
from benchmarks.simulator.workloads import NAMESPACES, policy_objects


def cluster_objects(profile: int, degraded: bool, variant: Variant | None = None) -> dict[str, Any]:
    """The API answers of a cluster of `profile` (a few nodes, namespaces and pods, the
    workloads that own them, discovery), by path."""
    variant = variant or Variant()
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
    workloads = policy_objects(profile, variant)
    daemonset = k8s.controller(
        "apps/v1",
        "DaemonSet",
        "node-exporter",
        "kube-system",
        k8s.pod_spec(k8s.container("node-exporter", "10m", "32Mi", context={}), host=True),
    )
    daemonset["status"] = {
        "currentNumberScheduled": node_count,
        "desiredNumberScheduled": node_count,
        "numberMisscheduled": 0,
        "numberReady": node_count,
        "numberUnavailable": 0,
    }
    # The controller of each namespace's pods (none in default: bare pods).
    replicasets = {rs["metadata"]["name"]: rs for rs in workloads["ReplicaSet"]}
    owners = {"shop": replicasets["web-5d8f7c9b4"], "payments": replicasets["api-5d8f7c9b4"]}
    owners["kube-system"] = daemonset
    pods = []
    for p in range(6 + 2 * profile):
        namespace = NAMESPACES[p % len(NAMESPACES)]
        owner = owners.get(namespace)
        template = owner["spec"]["template"] if owner else None
        spec = (
            copy.deepcopy(template["spec"])
            if template
            else k8s.pod_spec(k8s.container("app", "100m", "256Mi"))
        )
        spec["nodeName"] = f"node-{p % node_count}"
        spec["containers"][0]["resources"]["requests"] = {
            "cpu": f"{100 + 50 * (p % 4)}m",
            "memory": "256Mi",
        }
        labels = dict(template["metadata"]["labels"]) if template else k8s.labels("app")
        pods.append(
            {
                "metadata": k8s.meta(f"pod-{p}", namespace, labels, owner),
                "spec": spec,
                "status": {"phase": "Running"},
            }
        )
    if variant.privileged:
        debug = replicasets["debug-tools-5d8f7c9b4"]
        spec = copy.deepcopy(debug["spec"]["template"]["spec"])
        spec["nodeName"] = "node-0"
        pods.append(
            {
                "metadata": k8s.meta(
                    "debug-tools-5d8f7c9b4-x7k2p", "shop", k8s.labels("debug-tools"), debug
                ),
                "spec": spec,
                "status": {"phase": "Running"},
            }
        )
    event = {
        "metadata": {"name": "pod-0.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "pod-0", "namespace": "shop"},
        "reason": "BackOff",
        "message": "Back-off pulling image",
        "type": "Warning",
        "count": 2,
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    git_version = LEGACY_VERSION if variant.legacy else KUBE_VERSION
    objects: dict[str, Any] = {
        "/version": {
            "major": "1",
            "minor": git_version.split(".")[1],
            "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-04-16T00:00:00Z",
            "goVersion": "go1.21.9",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
        "/api/v1/nodes": k8s.list_of("NodeList", nodes),
        "/api/v1/namespaces": k8s.list_of(
            "NamespaceList",
            [
                {
                    "metadata": {
                        "name": ns,
                        "uid": k8s.uid(ns),
                        "labels": {"kubernetes.io/metadata.name": ns, "team": "platform"},
                    },
                    "status": {"phase": "Active"},
                }
                for ns in NAMESPACES
            ],
        ),
        "/api/v1/pods": k8s.list_of("PodList", pods),
        f"/apis/{METRICS_VERSION}/pods": pod_metrics(pods, profile),
        "/api/v1/persistentvolumeclaims": k8s.list_of(
            "PersistentVolumeClaimList",
            [
                {
                    "metadata": {"name": "data", "namespace": "shop"},
                    "spec": {"resources": {"requests": {"storage": "10Gi"}}},
                    "status": {"phase": "Bound"},
                }
            ],
        ),
        "/api/v1/events": k8s.list_of("EventList", [event] if profile % 2 else []),
        "/apis/apps/v1/statefulsets": k8s.list_of(
            "StatefulSetList",
            [
                k8s.controller(
                    "apps/v1",
                    "StatefulSet",
                    "db",
                    "payments",
                    k8s.pod_spec(k8s.container("db", "100m", "128Mi")),
                    replicas=1,
                )
            ],
            "apps/v1",
        ),
        "/apis/apps/v1/daemonsets": k8s.list_of("DaemonSetList", [daemonset], "apps/v1"),
        **discovery(variant.legacy),
    }
    for kind, items in workloads.items():
        group_version = str(items[0]["apiVersion"]) if items else "v1"
        plural = {"Service": "services", "NetworkPolicy": "networkpolicies"}.get(
            kind, kind.lower() + "s"
        )
        objects[k8s.list_path(group_version, plural)] = k8s.list_of(
            f"{kind}List", items, group_version
        )
    return objects


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


def pod_metrics(pods: list[dict[str, Any]], profile: int) -> dict[str, Any]:
    """PodMetrics of running pods: each container uses 50, 75, 100 or 125 % of its CPU
    request (by profile) and 80 % of its memory request."""
    cpu_percent, items = 50 + 25 * (profile % 4), []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        containers = []
        for container in pod["spec"]["containers"]:
            requests = (container.get("resources") or {}).get("requests") or {}
            cpu = int(_quantity(requests.get("cpu", "0")) * 10**9 * cpu_percent / 100)
            memory = int(_quantity(requests.get("memory", "0")) * 8 / 10)
            containers.append(
                {"name": container["name"], "usage": {"cpu": f"{cpu}n", "memory": str(memory)}}
            )
        metadata = pod["metadata"]
        items.append(
            {
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                "timestamp": "2026-01-01T00:00:00Z",
                "window": "30s",
                "containers": containers,
            }
        )
    return k8s.list_of("PodMetricsList", items, METRICS_VERSION)


_SUFFIXES = {"m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(value: str) -> float:
    """The simulator's own quantities ("250m", "128Mi", "1"), without the client."""
    for suffix, factor in _SUFFIXES.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)
