"""The workloads gate: every Deployment, StatefulSet and DaemonSet that was fully available
before a cluster's change still is afterwards, and none has gone.

A workload is fully available when every replica it wants is available and runs its
current template (as `kubectl rollout status` decides): a Deployment whose new pods
crash-loop keeps its old pods available but never finishes rolling out, and fails.

Push clusters are read live (three lists, `READ_SECONDS` in all, whatever the cluster's
usual timeouts). Pull clusters cannot be called: their agent's reports stand in, namely
the inventory's counts of workloads and unavailable workloads per kind, and each
application's replicas (ClusterWork), as fresh as the agent's last heartbeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from applications.models import ClusterWork, WorkState
from clusters.choices import ClusterMode
from clusters.models import Cluster, ClusterInventory
from clusters.services.credentials import cluster_api_client
from kube.client import classify, get_json

READ_SECONDS = 5.0
PAGE = 500
KINDS = (
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
)
INVENTORY_KINDS = {
    "deployments": "Deployments",
    "statefulsets": "StatefulSets",
    "daemonsets": "DaemonSets",
}
# Failures named one by one; the rest are counted in one more sentence.
MAX_NAMED = 5


class _OutOfTime(Exception):
    pass


@dataclass
class Workloads:
    """What one read found. `items`: "Deployment ns/name" → [desired, available, updated,
    old] (live); `counts` and `applications`: what the agent reported (pull)."""

    source: str
    items: dict[str, list[int]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    applications: dict[str, list[int]] = field(default_factory=dict)
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        if self.source == "live":
            return {"source": "live", "items": self.items}
        return {"source": "agent", "counts": self.counts, "applications": self.applications}


def workloads_read(cluster: Cluster) -> Workloads:
    """The cluster's workloads now: live for push clusters, as reported for pull ones."""
    if cluster.mode == ClusterMode.PULL:
        return _reported(cluster)
    return _live(cluster)


def _timeout(deadline: float) -> tuple[float, float]:
    """(connect, read) within what is left: a connection is tried twice (the client's one
    retry), so two connects and a read fit in it."""
    left = deadline - time.monotonic()
    if left < 0.2:
        raise _OutOfTime
    connect = min(1.0, left / 4)
    return connect, left - 2 * connect


def _live(cluster: Cluster) -> Workloads:
    found = Workloads(source="live")
    deadline = time.monotonic() + READ_SECONDS
    try:
        api = cluster_api_client(cluster=cluster)
        for kind, resource in KINDS:
            token = ""
            while True:
                query = {"limit": str(PAGE), **({"continue": token} if token else {})}
                path = f"/apis/apps/v1/{resource}"
                body = get_json(api, path, query, timeout=_timeout(deadline)) or {}
                for item in body.get("items") or []:
                    found.items[_key(kind, item)] = _replicas(kind, item)
                token = (body.get("metadata") or {}).get("continue") or ""
                if not token:
                    break
    except _OutOfTime:
        found.error = f"{cluster.name} did not answer within {READ_SECONDS:g} s."
    except Exception as error:  # classify words whatever the client raised, safely
        raised = classify(error, cluster.api_server_url)
        found.error = (
            f"{cluster.name} did not answer within {READ_SECONDS:g} s."
            if raised.code == "timeout"
            else raised.message
        )
    return found


def _key(kind: str, item: dict[str, Any]) -> str:
    metadata = item.get("metadata") or {}
    return f"{kind} {metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _replicas(kind: str, item: dict[str, Any]) -> list[int]:
    """[desired, available, updated, old] from the object's spec and status, as `kubectl
    rollout status` reads them: `updated` is 0 while the controller has not observed the
    latest spec (its counts are about the previous one), and `old` counts a Deployment's
    replicas still on an older template (a crash-looping rollout of 1 replica has 1 new
    pod counted as updated and keeps its old one available: only `old` tells)."""
    spec, status = item.get("spec") or {}, item.get("status") or {}
    generation = int((item.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0) >= generation
    if kind == "DaemonSet":
        updated = int(status.get("updatedNumberScheduled") or 0) if observed else 0
        return [
            int(status.get("desiredNumberScheduled") or 0),
            int(status.get("numberAvailable") or 0),
            updated,
            0,
        ]
    wanted = spec.get("replicas")
    desired = 1 if wanted is None else int(wanted)
    # StatefulSets report availableReplicas from 1.22 on; readyReplicas before.
    available = status.get("availableReplicas")
    if available is None and kind == "StatefulSet":
        available = status.get("readyReplicas")
    updated = int(status.get("updatedReplicas") or 0) if observed else 0
    old = max(0, int(status.get("replicas") or 0) - updated) if kind == "Deployment" else 0
    return [desired, int(available or 0), updated, old]


def _healthy(replicas: list[int]) -> bool:
    """Rolled out and available. A baseline stored before `old` was read has 3 values."""
    desired, available, updated = replicas[:3]
    old = replicas[3] if len(replicas) > 3 else 0
    return available >= desired and updated >= desired and old == 0


def _reported(cluster: Cluster) -> Workloads:
    found = Workloads(source="agent")
    inventory = ClusterInventory.objects.filter(cluster=cluster).only("data").first()
    reported = (inventory.data.get("workloads") if inventory else None) or {}
    for resource in INVENTORY_KINDS:
        counts = reported.get(resource) or {}
        found.counts[resource] = {
            "total": int(counts.get("total") or 0),
            "unavailable": int(counts.get("unavailable") or 0),
        }
    works = ClusterWork.objects.filter(cluster=cluster).values_list(
        "application__name", "desired_replicas", "available_replicas", "state"
    )
    for name, desired, available, state in works:
        found.applications[name] = [desired, available, int(state == WorkState.AVAILABLE)]
    return found


def workloads_gate(cluster: Cluster, before: dict[str, Any] | None) -> list[str]:
    """The workloads gate's failures against the baseline `before` (None when it could not
    be read: then every workload must be fully available now)."""
    now = workloads_read(cluster)
    if now.error:
        return [f"Cannot read the workloads of {cluster.name}: {now.error}"]
    if before is not None and before.get("source") != now.source:
        before = None  # the cluster changed mode: nothing comparable
    if now.source == "agent":
        return _named(_reported_failures(cluster.name, before or {}, now))
    return _named(_live_failures(cluster.name, before, now))


def _live_failures(name: str, before: dict[str, Any] | None, now: Workloads) -> list[str]:
    failed = []
    if before is None:
        for key, replicas in sorted(now.items.items()):
            if not _healthy(replicas):
                failed.append(
                    f"{key} on {name} is not fully available: {_shown(replicas)} (there is "
                    "no reading from before the change to compare with)."
                )
        return failed
    for key, replicas in sorted((before.get("items") or {}).items()):
        current = now.items.get(key)
        if current is None:
            failed.append(f"{key} on {name} is gone (it was there before the change).")
        elif _healthy(replicas) and not _healthy(current):
            failed.append(
                f"{key} on {name} is not fully available: {_shown(current)} (it was fully "
                "available before the change)."
            )
    return failed


def _shown(replicas: list[int]) -> str:
    desired, available, updated = replicas[:3]
    old = replicas[3] if len(replicas) > 3 else 0
    shown = (
        f"{available} of {desired} replicas available, {updated} of {desired} on its "
        "current template"
    )
    return shown + (f", {old} old replica{'s' if old != 1 else ''} still running" if old else "")


def _reported_failures(name: str, before: dict[str, Any], now: Workloads) -> list[str]:
    failed = []
    counts = before.get("counts") or {}
    for resource, label in INVENTORY_KINDS.items():
        was = counts.get(resource) or {"total": 0, "unavailable": 0}
        current = now.counts[resource]
        if current["total"] < was["total"]:
            failed.append(
                f"{name} has fewer {label} than before the change ({was['total']} → "
                f"{current['total']}), as its agent reports."
            )
        if current["unavailable"] > was["unavailable"]:
            failed.append(
                f"{name} has more {label} not fully available than before the change "
                f"({was['unavailable']} → {current['unavailable']}), as its agent reports."
            )
    for app, (desired, available, complete) in sorted((before.get("applications") or {}).items()):
        current_app = now.applications.get(app)
        if current_app is None:
            failed.append(f"Application {app} is gone from {name} (it was there before).")
        elif complete and available >= desired and not _app_healthy(current_app):
            failed.append(
                f"Application {app} on {name} is not fully available: its agent reports "
                f"{current_app[1]} of {current_app[0]} replicas available (it was fully "
                "available before the change)."
            )
    return failed


def _app_healthy(replicas: list[int]) -> bool:
    desired, available, complete = replicas
    return bool(complete) and available >= desired


def _named(failed: list[str]) -> list[str]:
    if len(failed) <= MAX_NAMED:
        return failed
    more = len(failed) - MAX_NAMED
    return [*failed[:MAX_NAMED], f"{more} more workload check{'s' if more > 1 else ''} failed."]
