"""Reads for the update-run pages, scoped to what the user may see. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet

from accounts.permissions import Action, AnyUser, restrict
from clusters.models import ClusterSet
from updates.choices import ClusterState, StageState
from updates.models import (
    MaintenanceWindow,
    UpdateRun,
    UpdateRunCluster,
    UpdateRunStage,
    UpdateStrategy,
)

# A cluster whose change is over, one way or the other (the run's progress counts these).
CLUSTER_DONE = (
    ClusterState.SUCCEEDED,
    ClusterState.FAILED,
    ClusterState.SKIPPED,
    ClusterState.REVERTED,
)
# A cluster that can still be skipped: nothing changed on it yet.
CLUSTER_SKIPPABLE = (ClusterState.PENDING, ClusterState.WAITING_WINDOW)


def strategy_list(*, user: AnyUser, action: Action = "view") -> QuerySet[UpdateStrategy]:
    return restrict(UpdateStrategy.objects.all(), user, action).select_related("team")


def window_list(*, user: AnyUser) -> QuerySet[MaintenanceWindow]:
    return restrict(MaintenanceWindow.objects.all(), user, "view").select_related(
        "team", "cluster_set"
    )


def cluster_set_choices(*, user: AnyUser) -> list[tuple[str, str]]:
    """(pk, "name (team)") of the cluster sets of the teams the user operates."""
    sets = restrict(ClusterSet.objects.all(), user, "operate").select_related("team")
    return [(str(s.pk), f"{s.name} ({s.team.name})") for s in sets.order_by("name")]


def run_list(*, user: AnyUser) -> QuerySet[UpdateRun]:
    """Runs with their progress counts (one query for the page)."""
    return (
        restrict(UpdateRun.objects.all(), user, "view")
        .select_related("team", "strategy")
        .annotate(
            clusters_total=Count("run_clusters"),
            clusters_done=Count("run_clusters", filter=Q(run_clusters__state__in=CLUSTER_DONE)),
        )
    )


def run_get(*, user: AnyUser, pk: Any) -> UpdateRun | None:
    return (
        restrict(UpdateRun.objects.all(), user, "view")
        .select_related("team", "strategy", "created_by", "operation")
        .filter(pk=pk)
        .first()
    )


def percent(done: int, total: int) -> int:
    """Finished clusters as a whole percentage (a run with no cluster is 0 %)."""
    return (100 * done) // total if total else 0


@dataclass
class GroupView:
    name: str
    clusters: list[UpdateRunCluster] = field(default_factory=list)


@dataclass
class StageView:
    stage: UpdateRunStage | None
    index: int
    name: str
    groups: list[GroupView] = field(default_factory=list)

    @property
    def clusters(self) -> list[UpdateRunCluster]:
        return [c for g in self.groups for c in g.clusters]

    @property
    def waiting_approval(self) -> bool:
        return self.stage is not None and self.stage.state == StageState.WAITING_APPROVAL


@dataclass
class RunProgress:
    stages: list[StageView]
    done: int
    total: int

    @property
    def percent(self) -> int:
        return percent(self.done, self.total)

    @property
    def counts(self) -> list[tuple[str, str, int]]:
        """(state, label, clusters) for each state some cluster is in, in ClusterState's
        order."""
        found: dict[str, int] = {}
        for stage in self.stages:
            for cluster in stage.clusters:
                found[cluster.state] = found.get(cluster.state, 0) + 1
        return [(s.value, s.label, found[s.value]) for s in ClusterState if s.value in found]


def run_progress(run: UpdateRun) -> RunProgress:
    """The run's stages (rows, or its copied stages while it has none) with their groups
    and clusters, in the run's order (two queries)."""
    rows = {
        s.index: s for s in UpdateRunStage.objects.filter(run=run).select_related("approved_by")
    }
    stages: dict[int, StageView] = {}
    for index, spec in enumerate(run.stages or []):
        name = str(spec.get("name", f"stage {index + 1}")) if isinstance(spec, dict) else ""
        stages[index] = StageView(stage=rows.get(index), index=index, name=name)
    for index, row in rows.items():
        stages.setdefault(index, StageView(stage=row, index=index, name=row.name))
        stages[index].name = row.name
    clusters = list(UpdateRunCluster.objects.filter(run=run).order_by("stage_index", "position"))
    for cluster in clusters:
        stage = stages.setdefault(
            cluster.stage_index,
            StageView(stage=None, index=cluster.stage_index, name=f"stage {cluster.stage_index}"),
        )
        group = next((g for g in stage.groups if g.name == cluster.group), None)
        if group is None:
            group = GroupView(name=cluster.group)
            stage.groups.append(group)
        group.clusters.append(cluster)
    done = sum(1 for c in clusters if c.state in CLUSTER_DONE)
    return RunProgress(stages=[stages[i] for i in sorted(stages)], done=done, total=len(clusters))
