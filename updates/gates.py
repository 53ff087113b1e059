"""Health gates of update runs: what a cluster looked like before its change (baseline),
and whether it still looks healthy after it.

SKELETON: `gate_check` only looks at the cluster's status; the full gates (no new
Degraded condition, workloads as available as before, no new critical policy violation,
an optional Prometheus query threshold) replace these bodies.
"""

from __future__ import annotations

from typing import Any

from clusters.choices import ClusterStatus
from clusters.models import Cluster


def gates_validate(config: dict[str, Any]) -> dict[str, Any]:
    """The run's gate settings, normalized; ValidationError names the field."""
    return dict(config or {})


def gate_baseline(cluster: Cluster, *, config: dict[str, Any]) -> dict[str, Any]:
    """What the gates compare with later; taken just before the cluster's change starts.
    Quick (one read of the cluster at most): called from the run's checks."""
    return {"status": cluster.status}


def gate_check(cluster: Cluster, baseline: dict[str, Any], *, config: dict[str, Any]) -> list[str]:
    """The failed gates, each a sentence a user understands; empty when healthy."""
    cluster.refresh_from_db(fields=["status", "status_reason"])
    if cluster.status != ClusterStatus.READY:
        return [f"{cluster.name} is {cluster.status}, not Ready ({cluster.status_reason})."]
    return []
