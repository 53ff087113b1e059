"""Update runs made directly with the ORM, in the states the pages must show: a draft
(planned clusters, one skipped) and a run under way (stage 1 done and approved, stage 2
waiting for approval with a cluster waiting for its window)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from accounts.models import Team
from operations.models import Operation
from operations.services import operation_create
from tests.factories import make_cluster
from updates.models import UpdateRun, UpdateRunCluster, UpdateRunStage, UpdateStrategy

STAGES: list[dict[str, Any]] = [
    {
        "name": "canary",
        "groups": [{"name": "canary", "selector": "ring=canary"}],
        "max_concurrency": 1,
        "soak_seconds": 600,
        "approval": False,
    },
    {
        "name": "eu",
        "groups": [{"name": "eu", "selector": "region=eu"}],
        "max_concurrency": "50%",
        "soak_seconds": 0,
        "approval": True,
    },
]
APPROVED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def make_strategy(team: Team, name: str = "canary-then-eu") -> UpdateStrategy:
    return UpdateStrategy.objects.create(team=team, name=name, stages=STAGES)


def _run(team: Team, strategy: UpdateStrategy, name: str, state: str, user: Any) -> UpdateRun:
    run = UpdateRun.objects.create(
        team=team,
        name=name,
        strategy=strategy,
        stages=STAGES,
        change_kind="kubernetes_version",
        change_params={"version": "v1.29.4"},
        state=state,
        created_by=user,
    )
    for index, spec in enumerate(STAGES):
        UpdateRunStage.objects.create(
            run=run,
            index=index,
            name=spec["name"],
            approval_required=spec["approval"],
            soak_seconds=spec["soak_seconds"],
        )
    return run


def _cluster(
    run: UpdateRun, stage: int, group: str, position: int, name: str, **fields: Any
) -> None:
    cluster = make_cluster(team=run.team, name=name, status="ready", kubernetes_version="v1.28.3")
    UpdateRunCluster.objects.create(
        run=run,
        stage_index=stage,
        group=group,
        position=position,
        cluster=cluster,
        cluster_name=name,
        from_value="v1.28.3",
        to_value="v1.29.4",
        **fields,
    )


def make_draft(team: Team, user: Any, prefix: str = "d") -> UpdateRun:
    """Three planned clusters; eu's second one is skipped (its provider cannot upgrade)."""
    run = _run(team, make_strategy(team, f"{prefix}-strategy"), "kubernetes 1.29", "draft", user)
    _cluster(run, 0, "canary", 0, f"{prefix}-canary-1")
    _cluster(run, 1, "eu", 0, f"{prefix}-eu-1")
    _cluster(
        run,
        1,
        "eu",
        1,
        f"{prefix}-eu-2",
        state="skipped",
        skip_reason="the local provider runs one Kubernetes version",
    )
    return run


def make_running(team: Team, user: Any, prefix: str = "r") -> tuple[UpdateRun, Operation]:
    """Stage canary succeeded (its cluster changed); stage eu waits for approval: one of its
    clusters waits for a window, one is pending."""
    run = _run(
        team,
        make_strategy(team, f"{prefix}-strategy"),
        "kubernetes 1.29 fleet",
        "waiting_approval",
        user,
    )
    operation = operation_create(kind="update.run", created_by=user, target=run, team=team)
    Operation.objects.filter(pk=operation.pk).update(
        state="running", progress=33, message="stage eu waits for approval"
    )
    run.operation = operation
    run.current_stage = 1
    run.message = "stage eu waits for approval"
    run.started_at = APPROVED_AT
    run.save()
    UpdateRunStage.objects.filter(run=run, index=0).update(
        state="succeeded", started_at=APPROVED_AT, finished_at=APPROVED_AT
    )
    UpdateRunStage.objects.filter(run=run, index=1).update(state="waiting_approval")
    _cluster(
        run,
        0,
        "canary",
        0,
        f"{prefix}-canary-1",
        state="succeeded",
        message="v1.29.4, gates passed",
    )
    _cluster(
        run,
        1,
        "eu",
        0,
        f"{prefix}-eu-1",
        state="waiting_window",
        message="waits for its window (opens Sat 02:00 Europe/Berlin)",
    )
    _cluster(run, 1, "eu", 1, f"{prefix}-eu-2")
    operation.refresh_from_db()
    return run, operation


def approve_canary(run: UpdateRun, approver: Any) -> None:
    """Mark stage canary as approved by `approver` (as the engine records it)."""
    UpdateRunStage.objects.filter(run=run, index=0).update(
        approval_required=True, approved_by=approver, approved_at=APPROVED_AT
    )
