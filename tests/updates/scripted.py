"""A test-only change kind whose start/poll/revert follow a script the test sets, recording
every call. Registered in `updates.changes.CHANGES` by the `scripted` fixture under an
existing kind's name (the runs table accepts only the real kinds), so the engine loads it
as it loads every kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied, ValidationError

from clusters.models import Cluster
from updates.changes.base import ClusterPlan, Step


class WorkerDied(Exception):
    """Stands for a worker killed in the middle of a check."""


@dataclass
class Script:
    polls_to_done: int = 1  # polls answering "running" before "done"
    fail_on: set[str] = field(default_factory=set)  # the change fails on these
    degrade_on_done: set[str] = field(default_factory=set)  # Degraded once changed: a gate fails
    die_on_start: set[str] = field(default_factory=set)  # the worker dies in start, once
    refuse_on: set[str] = field(default_factory=set)  # start refuses (PermissionDenied)
    calls: list[tuple[str, str]] = field(default_factory=list)
    polls: dict[tuple[str, str], int] = field(default_factory=dict)
    in_flight: dict[str, set[str]] = field(default_factory=dict)  # by the cluster's "ring"
    max_in_flight: dict[str, int] = field(default_factory=dict)
    most_at_once: int = 0
    finished: list[list[str]] = field(default_factory=list)

    def started(self, cluster: Cluster) -> None:
        ring = cluster.labels.get("ring", "")
        self.in_flight.setdefault(ring, set()).add(cluster.name)
        self.max_in_flight[ring] = max(self.max_in_flight.get(ring, 0), len(self.in_flight[ring]))
        self.most_at_once = max(self.most_at_once, sum(len(s) for s in self.in_flight.values()))

    def ended(self, cluster: Cluster) -> None:
        self.in_flight.get(cluster.labels.get("ring", ""), set()).discard(cluster.name)

    def of(self, method: str) -> list[str]:
        return [name for called, name in self.calls if called == method]


SCRIPT = Script()


class ScriptedChange:
    kind: ClassVar[str] = "node_pool"
    reversible: ClassVar[bool] = True

    def __init__(self, *, team: Any, params: dict[str, Any]) -> None:
        if not isinstance(params.get("image"), str) or not params["image"]:
            raise ValidationError({"image": "The image to roll out."})
        self._params = {"image": params["image"]}

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def describe(self) -> str:
        return f"image {self._params['image']}"

    def plan(self, clusters: Sequence[Cluster]) -> list[ClusterPlan]:
        plans = []
        for cluster in clusters:
            current = cluster.labels.get("image", "v1")
            plans.append(
                ClusterPlan(
                    cluster_id=cluster.pk,
                    cluster_name=cluster.name,
                    from_value=current,
                    to_value=self._params["image"],
                    skip_reason="Already on the image." if current == self._params["image"] else "",
                    estimate_seconds=120,
                )
            )
        return plans

    def start(self, cluster: Cluster, *, actor: Any) -> dict[str, Any]:
        SCRIPT.calls.append(("start", cluster.name))
        if cluster.name in SCRIPT.die_on_start:
            SCRIPT.die_on_start.discard(cluster.name)
            raise WorkerDied(cluster.name)
        if cluster.name in SCRIPT.refuse_on:
            raise PermissionDenied(f"Changing {cluster.name} needs the admin role.")
        SCRIPT.started(cluster)
        return {"phase": "change"}

    def poll(self, cluster: Cluster, state: dict[str, Any]) -> Step:
        phase = state["phase"]
        SCRIPT.calls.append((f"poll-{phase}", cluster.name))
        key = (cluster.name, phase)
        SCRIPT.polls[key] = SCRIPT.polls.get(key, 0) + 1
        if SCRIPT.polls[key] <= SCRIPT.polls_to_done:
            return Step("running", f"{phase} {SCRIPT.polls[key]}")
        if phase == "revert":
            return Step("done")
        SCRIPT.ended(cluster)
        if cluster.name in SCRIPT.fail_on:
            return Step("failed", "the new nodes never became Ready")
        if cluster.name in SCRIPT.degrade_on_done:
            Cluster.objects.filter(pk=cluster.pk).update(
                status="degraded", status_reason="CrashLoopBackOff"
            )
        return Step("done", "replaced")

    def revert(self, cluster: Cluster, state: dict[str, Any], *, actor: Any) -> dict[str, Any]:
        SCRIPT.calls.append(("revert", cluster.name))
        return {"phase": "revert"}

    def finish(self, clusters: Sequence[Cluster], *, actor: Any) -> None:
        SCRIPT.finished.append(sorted(c.name for c in clusters))

    def impact(self, clusters: Sequence[Cluster]) -> dict[str, Any]:
        return {c.name: {"nodes": c.node_count} for c in clusters}


class IrreversibleChange(ScriptedChange):
    kind: ClassVar[str] = "kubernetes_version"
    reversible: ClassVar[bool] = False
