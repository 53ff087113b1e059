"""From a strategy's stages to clusters (database reads): groups resolved in the team, the
run's scope applied, each cluster's maintenance windows.

A cluster selected by two groups (or two stages) runs once, in the first that selects it.
Within a group, clusters are in name order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import Team
from clusters.eol import eol_for
from clusters.labels import LabelSelector
from clusters.models import Cluster, ClusterSet
from clusters.services.lifecycle import cluster_set_clusters
from updates.models import MaintenanceWindow
from updates.strategy import Stage
from updates.windows import Window, windows_from

SCOPE_KEYS = {"eol", "selector"}


@dataclass(frozen=True)
class PlannedGroup:
    stage_index: int
    name: str
    clusters: list[Cluster]


def scope_validate(scope: Any) -> dict[str, str]:
    """A run's scope, normalized: {"eol": "past"} keeps clusters whose version is past its
    end of life (clusters/eol.py), {"selector": "..."} those matching a label selector."""
    if scope in (None, {}):
        return {}
    if not isinstance(scope, dict):
        raise ValidationError({"scope": 'An object such as {"eol": "past"}.'})
    unknown = sorted(set(scope) - SCOPE_KEYS)
    if unknown:
        raise ValidationError({"scope": f"Unknown keys {unknown} (use eol, selector)."})
    normalized: dict[str, str] = {}
    if "eol" in scope:
        if scope["eol"] != "past":
            raise ValidationError({"scope": 'eol: only "past" (versions past end of life).'})
        normalized["eol"] = "past"
    if "selector" in scope:
        selector = scope["selector"]
        if not isinstance(selector, str) or not selector.strip():
            raise ValidationError({"scope": "selector: a label selector such as region=eu."})
        try:
            LabelSelector.parse(selector)
        except ValidationError as error:
            raise ValidationError({"scope": f"selector: {' '.join(error.messages)}"}) from None
        normalized["selector"] = selector.strip()
    return normalized


def past_eol(cluster: Cluster, today: Any = None) -> bool:
    """Whether the cluster's Kubernetes version is past its end of life (unknown: no)."""
    ends = eol_for(cluster.provider, cluster.kubernetes_version)
    return ends is not None and ends < (today or timezone.now().date())


def strategy_sets_missing(team: Team, stages: Sequence[Stage]) -> list[str]:
    """`stages[i].groups[j].cluster_set: ...` for each cluster set the team does not have."""
    names = {g.cluster_set for stage in stages for g in stage.groups if g.cluster_set}
    found = set(ClusterSet.objects.filter(team=team, name__in=names).values_list("name", flat=True))
    return [
        f"stages[{i}].groups[{j}].cluster_set: the team has no cluster set {group.cluster_set!r}."
        for i, stage in enumerate(stages)
        for j, group in enumerate(stage.groups)
        if group.cluster_set and group.cluster_set not in found
    ]


def resolve(team: Team, stages: Sequence[Stage], scope: dict[str, str]) -> list[PlannedGroup]:
    """Every group of every stage with its clusters, de-duplicated and scoped."""
    missing = strategy_sets_missing(team, stages)
    if missing:
        raise ValidationError({"strategy": missing})
    sets = {s.name: s for s in ClusterSet.objects.filter(team=team)}
    scoped = Cluster.objects.filter(team=team)
    if "selector" in scope:
        scoped = scoped.filter(LabelSelector.parse(scope["selector"]).to_q())
    allowed = {c.pk: c for c in scoped.order_by("name")}
    if scope.get("eol") == "past":
        today = timezone.now().date()
        allowed = {pk: c for pk, c in allowed.items() if past_eol(c, today)}
    taken: set[int] = set()
    planned: list[PlannedGroup] = []
    for index, stage in enumerate(stages):
        for group in stage.groups:
            if group.cluster_set:
                ids = cluster_set_clusters(cluster_set=sets[group.cluster_set]).values_list(
                    "pk", flat=True
                )
            else:
                selector = LabelSelector.parse(group.selector)
                ids = Cluster.objects.filter(selector.to_q(), team=team).values_list(
                    "pk", flat=True
                )
            members = sorted(
                (allowed[pk] for pk in set(ids) if pk in allowed and pk not in taken),
                key=lambda c: c.name,
            )
            taken.update(c.pk for c in members)
            planned.append(PlannedGroup(stage_index=index, name=group.name, clusters=members))
    return planned


def cluster_windows(team_id: int, cluster_ids: Iterable[int]) -> dict[int, list[Window]]:
    """The enabled maintenance windows of each cluster (through its cluster sets); a
    cluster in no windowed set is missing from the answer (it may change at any time)."""
    wanted = set(cluster_ids)
    found: dict[int, list[Window]] = {}
    rows = MaintenanceWindow.objects.filter(team_id=team_id, enabled=True).select_related(
        "cluster_set"
    )
    for row in rows:
        (window,) = windows_from(
            [(row.days, row.start_time, row.duration_minutes, row.timezone, row.name)]
        )
        members = cluster_set_clusters(cluster_set=row.cluster_set).values_list("pk", flat=True)
        for pk in set(members) & wanted:
            found.setdefault(pk, []).append(window)
    return found
