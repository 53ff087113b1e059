"""Reading a cluster for its policies: list each kind they need once (through shared
discovery) and describe the cluster itself for cluster rules. Runs in worker threads: no
database access (rules are prefetched)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clusters.models import Cluster
from policies.engine import Sharing, Snapshot, kinds_needed, share
from policies.kube import ClusterReader
from policies.models import Policy


def _version_number(text: Any) -> int:
    match = re.match(r"\d+", str(text or ""))
    return int(match.group()) if match else 0


def cluster_facts(cluster: Cluster, version: dict[str, Any]) -> dict[str, Any]:
    """The cluster as cluster rules see it (`cluster.version.minor >= 29`, ...)."""
    return {
        "name": cluster.name,
        "labels": dict(cluster.labels),
        "provider": cluster.provider,
        "region": cluster.region,
        "environment": cluster.environment,
        "version": {
            "major": _version_number(version.get("major")),
            "minor": _version_number(version.get("minor")),
            "gitVersion": str(version.get("gitVersion") or ""),
        },
        "nodeCount": cluster.node_count,
        "nodesReady": cluster.nodes_ready,
        "capacity": {
            "cpuMillis": cluster.capacity_cpu_millis,
            "memoryBytes": cluster.capacity_memory_bytes,
            "pods": cluster.capacity_pods,
        },
        "allocatable": {
            "cpuMillis": cluster.allocatable_cpu_millis,
            "memoryBytes": cluster.allocatable_memory_bytes,
            "pods": cluster.allocatable_pods,
        },
    }


@dataclass
class Read:
    snapshot: Snapshot
    failed: dict[tuple[str, str], str]


@dataclass(frozen=True)
class Plan:
    """A policy's rules and the kinds they need, worked out once per batch rather than
    once per cluster."""

    rules: list[Any]
    kinds: list[tuple[str, str]]


def plans_for(policies: Iterable[Policy]) -> dict[int, Plan]:
    """Plans for `policies` (rules prefetched), by policy id."""
    found: dict[int, Plan] = {}
    for policy in policies:
        if policy.pk not in found:
            rules = list(policy.rules.all())
            kinds = list(dict.fromkeys(k for rule in rules for k in kinds_needed(rule)))
            found[policy.pk] = Plan(rules, kinds)
    return found


def read_cluster(
    reader: ClusterReader,
    cluster: Cluster,
    policies: list[Policy],
    plans: dict[int, Plan] | None = None,
    sharing: Sharing | None = None,
) -> Read:
    """List each kind the policies need once. A kind that fails is remembered so only
    the policies needing it get an error."""
    plans = plans or plans_for(policies)
    if sharing is None:
        sharing = share(rule for p in policies for rule in plans[p.pk].rules)
    kinds = list(dict.fromkeys(kind for p in policies for kind in plans[p.pk].kinds))
    objects, namespaced, failed = reader.list_kinds(kinds)
    facts = cluster_facts(cluster, _version(cluster, reader))
    return Read(Snapshot(objects, namespaced, facts, sharing=sharing), failed)


def _version(cluster: Cluster, reader: ClusterReader) -> dict[str, Any]:
    """The version collection last recorded (`v1.29.3`), else the cluster's answer."""
    match = re.match(r"v?(\d+)\.(\d+)", cluster.kubernetes_version or "")
    if match:
        major, minor = match.groups()
        return {"major": major, "minor": minor, "gitVersion": cluster.kubernetes_version}
    return reader.version()


def cluster_reader(cluster: Cluster, api: Any) -> ClusterReader:
    """A reader whose discovery is shared per cluster and server version."""
    return ClusterReader(api, cache_key=discovery_key(cluster))


def discovery_key(cluster: Cluster) -> str:
    return f"{cluster.pk}:{cluster.kubernetes_version}"
