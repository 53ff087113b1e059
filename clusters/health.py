"""Cluster health: what one observation says, and when the status really changes.

A probe's observation is Ready, Degraded (API up, nodes or pods unhealthy, API slow) or
Unreachable (the probe failed). The status follows observations with hysteresis: it
changes only after `threshold(observed)` observations in a row agree, so a single blip
does not flip it. At a 30 s interval, three failed probes in a row mark a dead cluster
Unreachable within 90 s of its death; a cluster never seen (Unknown) takes its first
observation at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from clusters.choices import ClusterStatus
from kube.inventory import Inventory


@dataclass(frozen=True)
class Condition:
    type: str
    ok: bool
    reason: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "True" if self.ok else "False",
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class Observation:
    status: ClusterStatus
    reason: str
    message: str
    conditions: tuple[Condition, ...] = ()


def observe_inventory(inventory: Inventory) -> Observation:
    """Conditions a healthy cluster meets; any failing one makes it Degraded."""
    total, ready = len(inventory.nodes), inventory.nodes_ready
    not_ready = [node["name"] for node in inventory.nodes if not node["ready"]]
    nodes = Condition(
        "NodesReady",
        total > 0 and not not_ready,
        "NoNodes" if not total else ("NodesNotReady" if not_ready else "AllNodesReady"),
        f"{ready} of {total} nodes ready"
        + (f"; not ready: {', '.join(not_ready[:5])}" if not_ready else ""),
    )
    active = sum(inventory.pods_by_phase.get(p, 0) for p in ("Running", "Pending", "Unknown"))
    failing = inventory.pods_crashlooping + inventory.pods_by_phase.get("Failed", 0)
    considered = active + inventory.pods_by_phase.get("Failed", 0)
    percent = 100 * failing / max(considered, 1)
    pods_ok = percent <= settings.KEELSON_HEALTH_FAILING_POD_PERCENT
    pods = Condition(
        "PodsHealthy",
        pods_ok,
        "PodsHealthy" if pods_ok else "PodsFailing",
        f"{failing} failing or crash-looping pods of {considered}",
    )
    slow = inventory.api_latency_ms > settings.KEELSON_HEALTH_SLOW_API_MS
    api = Condition(
        "APIResponsive",
        not slow,
        "SlowAPI" if slow else "Responsive",
        f"API answered in {inventory.api_latency_ms:.0f} ms",
    )
    conditions = (nodes, pods, api)
    failed = [c for c in conditions if not c.ok]
    if failed:
        return Observation(
            ClusterStatus.DEGRADED,
            failed[0].reason,
            "; ".join(c.message for c in failed),
            conditions,
        )
    return Observation(ClusterStatus.READY, "Healthy", nodes.message, conditions)


def observe_failure(code: str, message: str) -> Observation:
    return Observation(
        ClusterStatus.UNREACHABLE,
        {"unauthorized": "Unauthorized", "forbidden": "Forbidden", "tls": "TLSFailed"}.get(
            code, "ProbeFailed"
        ),
        message,
        (Condition("APIReachable", False, code, message),),
    )


def threshold(observed: ClusterStatus) -> int:
    return {
        ClusterStatus.UNREACHABLE: settings.KEELSON_HEALTH_UNREACHABLE_AFTER,
        ClusterStatus.DEGRADED: settings.KEELSON_HEALTH_DEGRADED_AFTER,
        ClusterStatus.READY: settings.KEELSON_HEALTH_RECOVER_AFTER,
    }.get(observed, 1)


@dataclass(frozen=True)
class Verdict:
    status: ClusterStatus
    pending_status: str
    pending_count: int

    def changed_from(self, previous: str) -> bool:
        return self.status != previous


def next_status(
    *, current: str, pending_status: str, pending_count: int, observed: ClusterStatus
) -> Verdict:
    """The status after one more observation (pure; see the module docstring)."""
    if observed == current:
        return Verdict(ClusterStatus(current), "", 0)
    count = pending_count + 1 if pending_status == observed else 1
    if current == ClusterStatus.UNKNOWN or count >= threshold(observed):
        return Verdict(observed, "", 0)
    return Verdict(ClusterStatus(current), observed, count)
