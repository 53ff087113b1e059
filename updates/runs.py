"""Making a draft run's rows (stages, clusters with their plans) and refreshing the plans
when it starts. Called by updates/services.py inside its transaction (which audits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from accounts.models import Team
from updates.changes import change_for
from updates.changes.base import Change, ClusterPlan
from updates.choices import ClusterState
from updates.models import UpdateRun, UpdateRunCluster, UpdateRunStage, UpdateStrategy
from updates.planning import PlannedGroup, resolve
from updates.strategy import parse_stages


def _stages_json(stages: list[dict[str, Any]], rows: Sequence[UpdateRunCluster]) -> list[Any]:
    """The strategy's stages with each group's count of clusters to change (`planned`),
    from which a percentage concurrency is computed."""
    counted = []
    for index, stage in enumerate(stages):
        groups = []
        for group in stage["groups"]:
            planned = sum(
                1
                for r in rows
                if r.stage_index == index
                and r.group == group["name"]
                and r.state != ClusterState.SKIPPED
            )
            groups.append({**group, "planned": planned})
        counted.append({**stage, "groups": groups})
    return counted


def plan_run(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    strategy: UpdateStrategy,
    change: Change,
    gates: dict[str, Any],
    scope: dict[str, Any],
) -> UpdateRun:
    try:
        stages = parse_stages(strategy.stages)
    except ValidationError as error:
        raise ValidationError({"strategy": error.messages}) from None
    planned: list[PlannedGroup] = resolve(team, stages, scope)
    clusters = [cluster for group in planned for cluster in group.clusters]
    if not clusters:
        where = " within the run's scope" if scope else ""
        raise ValidationError(
            {"strategy": f"The strategy's groups select no cluster of team {team.name}{where}."}
        )
    plans = {plan.cluster_id: plan for plan in change.plan(clusters)}
    run = UpdateRun.objects.create(
        team=team,
        name=name,
        strategy=strategy,
        change_kind=change.kind,
        change_params=change.params(),
        gates=gates,
        scope=scope,
        created_by_id=actor.pk if actor is not None else None,
    )
    UpdateRunStage.objects.bulk_create(
        UpdateRunStage(
            run=run,
            index=index,
            name=stage.name,
            approval_required=stage.approval,
            soak_seconds=stage.soak_seconds,
        )
        for index, stage in enumerate(stages)
    )
    rows: list[UpdateRunCluster] = []
    for group in planned:
        for cluster in group.clusters:
            plan = plans.get(cluster.pk) or ClusterPlan(
                cluster_id=cluster.pk, cluster_name=cluster.name, skip_reason="Not planned."
            )
            rows.append(
                UpdateRunCluster(
                    run=run,
                    stage_index=group.stage_index,
                    group=group.name,
                    position=len(rows),
                    cluster=cluster,
                    cluster_name=cluster.name,
                    state=ClusterState.SKIPPED if plan.skip_reason else ClusterState.PENDING,
                    from_value=plan.from_value[:200],
                    to_value=plan.to_value[:200],
                    skip_reason=plan.skip_reason[:500],
                )
            )
    UpdateRunCluster.objects.bulk_create(rows)
    run.stages = _stages_json([stage.as_json() for stage in stages], rows)
    run.save(update_fields=["stages"])
    return run


def replan_run(run: UpdateRun) -> None:
    """Plan the run's clusters again as it starts: one deleted, or already on the target
    since the preview, is skipped; from/to are refreshed."""
    change = change_for(run.change_kind, team=run.team, params=run.change_params)
    rows = list(UpdateRunCluster.objects.filter(run=run).select_related("cluster"))
    todo = [r for r in rows if r.state == ClusterState.PENDING]
    for row in todo:
        if row.cluster is None:
            row.state, row.skip_reason = ClusterState.SKIPPED, "The cluster was deleted."
    live = [r for r in todo if r.cluster is not None]
    plans = {p.cluster_id: p for p in change.plan([r.cluster for r in live if r.cluster])}
    for row in live:
        plan = plans.get(row.cluster_id or 0)
        if plan is None:
            continue
        row.from_value, row.to_value = plan.from_value[:200], plan.to_value[:200]
        if plan.skip_reason:
            row.state, row.skip_reason = ClusterState.SKIPPED, plan.skip_reason[:500]
    UpdateRunCluster.objects.bulk_update(todo, ["state", "skip_reason", "from_value", "to_value"])
    run.stages = _stages_json(run.stages, rows)
    run.save(update_fields=["stages"])
