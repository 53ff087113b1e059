"""Update strategies, maintenance windows and runs: every write validated, saved and
audited in one call. Pages, API, tasks and commands call these (docs/updates.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Team, slug_validator
from accounts.permissions import PermissionDenied, require_role
from audit.services import audit_record
from clusters.models import ClusterSet
from operations.choices import LogLevel
from operations.dispatch import operation_dispatch
from operations.models import Operation
from operations.services import operation_create, operation_update
from updates.changes import change_for
from updates.choices import RUN_FINAL, ClusterState, RunState, StageState
from updates.engine import RUN_KIND, run_check
from updates.gates import gates_validate
from updates.models import MaintenanceWindow, UpdateRun, UpdateRunCluster, UpdateStrategy
from updates.planning import scope_validate, strategy_sets_missing
from updates.preview import run_preview
from updates.runs import plan_run, replan_run
from updates.strategy import parse_stages
from updates.windows import window_errors


def _name_errors(errors: dict[str, Any], name: str, taken: bool) -> None:
    try:
        slug_validator(name)
    except ValidationError:
        errors["name"] = "Lowercase letters, digits and '-', starting and ending with one."
        return
    if taken:
        errors["name"] = "The team already has one with this name."


def update_strategy_save(
    *, actor: AbstractBaseUser | None, strategy: UpdateStrategy
) -> UpdateStrategy:
    """Create or update a strategy; its stages are validated (updates.strategy) and every
    cluster set it names must be the team's."""
    errors: dict[str, Any] = {}
    taken = (
        UpdateStrategy.objects.filter(team_id=strategy.team_id, name=strategy.name)
        .exclude(pk=strategy.pk)
        .exists()
    )
    _name_errors(errors, strategy.name, taken)
    if len(strategy.description) > 500:
        errors["description"] = "At most 500 characters."
    try:
        stages = parse_stages(strategy.stages)
    except ValidationError as error:
        errors.update(error.message_dict)
    else:
        missing = strategy_sets_missing(strategy.team, stages)
        if missing:
            errors["stages"] = missing
        strategy.stages = [stage.as_json() for stage in stages]
    if errors:
        raise ValidationError(errors)
    created = strategy.pk is None
    with transaction.atomic():
        if created:
            strategy.created_by_id = actor.pk if actor is not None else None
        strategy.save()
        audit_record(
            actor=actor,
            action="update_strategy.create" if created else "update_strategy.update",
            target=strategy,
            team=strategy.team,
            detail={"stages": [s["name"] for s in strategy.stages]},
        )
    return strategy


@transaction.atomic
def update_strategy_delete(*, actor: AbstractBaseUser | None, strategy: UpdateStrategy) -> None:
    """Runs made from it keep their copy of its stages."""
    audit_record(actor=actor, action="update_strategy.delete", target=strategy, team=strategy.team)
    strategy.delete()


def maintenance_window_save(
    *, actor: AbstractBaseUser | None, window: MaintenanceWindow
) -> MaintenanceWindow:
    errors: dict[str, Any] = window_errors(
        days=window.days,
        start=window.start_time,
        duration_minutes=window.duration_minutes,
        timezone=window.timezone,
    )
    taken = (
        MaintenanceWindow.objects.filter(team_id=window.team_id, name=window.name)
        .exclude(pk=window.pk)
        .exists()
    )
    _name_errors(errors, window.name, taken)
    if (
        window.cluster_set_id is None
        or not ClusterSet.objects.filter(pk=window.cluster_set_id, team_id=window.team_id).exists()
    ):
        errors["cluster_set"] = "One of the team's cluster sets."
    if errors:
        raise ValidationError(errors)
    window.days = sorted(window.days)
    created = window.pk is None
    with transaction.atomic():
        window.save()
        audit_record(
            actor=actor,
            action="maintenance_window.create" if created else "maintenance_window.update",
            target=window,
            team=window.team,
            detail={
                "cluster_set": window.cluster_set.name,
                "days": window.days,
                "start_time": window.start_time.isoformat(),
                "duration_minutes": window.duration_minutes,
                "timezone": window.timezone,
                "enabled": window.enabled,
            },
        )
    return window


@transaction.atomic
def maintenance_window_delete(*, actor: AbstractBaseUser | None, window: MaintenanceWindow) -> None:
    audit_record(actor=actor, action="maintenance_window.delete", target=window, team=window.team)
    window.delete()


def update_run_create(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    strategy: UpdateStrategy,
    change_kind: str,
    change_params: dict[str, Any],
    gates: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> UpdateRun:
    """A draft run: the strategy's stages copied, every cluster planned (skipped ones with
    their reason). Nothing changes on any cluster until `update_run_start`."""
    errors: dict[str, Any] = {}
    name = (name or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "A name of 1 to 100 characters."
    if strategy.team_id != team.pk:
        errors["strategy"] = "No such strategy in the team."
    change = None
    try:
        change = change_for(change_kind, team=team, params=change_params or {})
    except ValidationError as error:
        errors.update(_nested(error, "change_params", keep=("change_kind",)))
    try:
        gates = gates_validate(gates or {})
    except ValidationError as error:
        errors.update(_nested(error, "gates"))
    try:
        scope = scope_validate(scope)
    except ValidationError as error:
        errors.update(_nested(error, "scope"))
    if errors or change is None:
        raise ValidationError(errors)
    with transaction.atomic():
        run = plan_run(
            actor=actor,
            team=team,
            name=name,
            strategy=strategy,
            change=change,
            gates=gates or {},
            scope=scope or {},
        )
        audit_record(
            actor=actor,
            action="update_run.create",
            target=run,
            team=team,
            detail={
                "strategy": strategy.name,
                "change_kind": change_kind,
                "change_params": run.change_params,
                "scope": run.scope,
                "clusters": run.run_clusters.count(),
            },
        )
    return run


def _nested(error: ValidationError, field: str, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Errors about the inside of `field` (a change's parameters, the gates), named as the
    API's caller sees them: {"change_params": ["version: ..."]}."""
    if not hasattr(error, "error_dict"):
        return {field: error.messages}
    found: dict[str, Any] = {}
    for name, messages in error.message_dict.items():
        if name in keep or name == field:
            found.setdefault(name, []).extend(messages)
        else:
            found.setdefault(field, []).extend(f"{name}: {m}" for m in messages)
    return found


def update_run_preview(*, run: UpdateRun) -> dict[str, Any]:
    """Every stage with its groups and clusters, what changes on each (from → to, skipped
    and why), when each cluster's next maintenance window opens, the expected duration,
    and the change kind's impact (a policy's objects that would be denied)."""
    return run_preview(run)


def _locked(run: UpdateRun) -> UpdateRun:
    return UpdateRun.objects.select_for_update().select_related("team").get(pk=run.pk)


def _refuse(run: UpdateRun, doing: str, allowed: tuple[str, ...]) -> None:
    if run.state not in allowed:
        raise ValidationError(
            {"state": f"The run is {run.get_state_display().lower()}; it cannot be {doing}."}
        )


def _log(run: UpdateRun, text: str, level: LogLevel = LogLevel.INFO) -> None:
    if run.operation_id is not None:
        operation_update(operation_id=run.operation_id, log=text, level=level)


def _who(actor: AbstractBaseUser | None) -> str:
    return actor.get_username() if actor is not None else "the system"


ACTIVE_RUN = (RunState.RUNNING, RunState.WAITING_APPROVAL, RunState.PAUSED, RunState.REVERTING)


def _refuse_overlap(run: UpdateRun) -> None:
    """Two runs must not change one cluster at once (each would judge its gates against
    the other's change, and revert over it): a cluster an active run has changed, or will,
    is refused (a changed one may yet be reverted by that run)."""
    mine = UpdateRunCluster.objects.filter(run=run).exclude(state=ClusterState.SKIPPED)
    busy = (
        UpdateRunCluster.objects.filter(
            run__state__in=ACTIVE_RUN,
            cluster_id__in=mine.values("cluster_id"),
            cluster_id__isnull=False,
        )
        .exclude(run=run)
        .exclude(state__in=(ClusterState.SKIPPED, ClusterState.REVERTED))
        .select_related("run")
        .order_by("cluster_name")
    )
    first = busy.first()
    if first is not None:
        names = sorted({row.cluster_name for row in busy[:20]})
        raise ValidationError(
            {
                "state": f"Run {first.run.name} ({first.run.get_state_display().lower()}) is "
                f"still changing or will change {', '.join(names)}: wait for it to end, or "
                "skip those clusters in one of the runs."
            }
        )


def _start_role(run: UpdateRun) -> tuple[Role, str]:
    """What starting the run takes: an upgrade or an enforcement takes an admin of the team,
    as the cluster's upgrade and the policy's enforce switch do (the run acts as its starter)."""
    if run.change_kind == "kubernetes_version":
        return Role.ADMIN, "start Kubernetes upgrade runs"
    if run.change_kind == "policy_mode" and run.change_params.get("mode") == "enforce":
        return Role.ADMIN, "start runs that enforce a policy"
    return Role.OPERATOR, "start update runs"


def update_run_start(*, actor: AbstractBaseUser | None, run: UpdateRun) -> Operation:
    """Start a draft; the run then acts as `actor` on every cluster."""
    role, doing = _start_role(run)
    if actor is not None:  # None: the system (commands, tests of the engine)
        require_role(actor, run.team, role, doing=doing, target=run)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=run.team_id).first()  # one start at a time
        run = _locked(run)
        _refuse(run, "started", (RunState.DRAFT,))
        replan_run(run)
        _refuse_overlap(run)
        operation = operation_create(
            kind=RUN_KIND,
            created_by=actor,
            target=run,
            team=run.team,
            params={"run_id": str(run.pk)},
            message=f"Starting {run.name}",
        )
        run.operation = operation
        run.state = RunState.RUNNING
        run.started_at = timezone.now()
        run.message = "Starting"
        run.save(update_fields=["operation", "state", "started_at", "message", "updated_at"])
        audit_record(actor=actor, action="update_run.start", target=run, team=run.team)
        operation_dispatch(operation)
    return operation


def update_run_pause(*, actor: AbstractBaseUser | None, run: UpdateRun) -> UpdateRun:
    """No cluster starts until resumed; the changes under way finish."""
    with transaction.atomic():
        run = _locked(run)
        _refuse(run, "paused", (RunState.RUNNING, RunState.WAITING_APPROVAL))
        run.state = RunState.PAUSED
        run.save(update_fields=["state", "updated_at"])
        _log(run, f"Paused by {_who(actor)}")
        audit_record(actor=actor, action="update_run.pause", target=run, team=run.team)
    return run


def update_run_resume(*, actor: AbstractBaseUser | None, run: UpdateRun) -> UpdateRun:
    with transaction.atomic():
        run = _locked(run)
        _refuse(run, "resumed", (RunState.PAUSED,))
        run.state = RunState.RUNNING
        run.save(update_fields=["state", "updated_at"])
        _log(run, f"Resumed by {_who(actor)}")
        audit_record(actor=actor, action="update_run.resume", target=run, team=run.team)
    return run


def update_run_abort(*, actor: AbstractBaseUser | None, run: UpdateRun) -> UpdateRun:
    """Stop starting changes; changes under way finish; nothing is reverted."""
    with transaction.atomic():
        run = _locked(run)
        allowed = (RunState.DRAFT, RunState.RUNNING, RunState.WAITING_APPROVAL, RunState.PAUSED)
        _refuse(run, "aborted", allowed)
        if run.state == RunState.DRAFT:
            run.state, run.finished_at, run.message = RunState.ABORTED, timezone.now(), "Aborted"
            run.save(update_fields=["state", "finished_at", "message", "updated_at"])
        else:
            run.abort_requested = True
            run.message = f"Aborting (by {_who(actor)})"
            run.save(update_fields=["abort_requested", "message", "updated_at"])
            _log(run, f"Abort requested by {_who(actor)}", LogLevel.WARNING)
        audit_record(actor=actor, action="update_run.abort", target=run, team=run.team)
    return run


def update_run_skip_cluster(
    *, actor: AbstractBaseUser | None, run: UpdateRun, cluster_name: str
) -> UpdateRun:
    """A cluster that has not started changing is left out; one that has is refused."""
    with transaction.atomic():
        run = _locked(run)
        if run.state in RUN_FINAL:
            _refuse(run, "changed", ())
        row = UpdateRunCluster.objects.filter(run=run, cluster_name=cluster_name).first()
        if row is None:
            raise ValidationError({"cluster": f"The run has no cluster {cluster_name!r}."})
        if row.state not in (ClusterState.PENDING, ClusterState.WAITING_WINDOW):
            raise ValidationError(
                {
                    "cluster": f"{cluster_name} is {row.get_state_display().lower()}; only a "
                    "cluster that has not started changing can be skipped."
                }
            )
        row.state = ClusterState.SKIPPED
        row.skip_reason = f"Skipped by {_who(actor)}."
        row.message = ""
        row.save(update_fields=["state", "skip_reason", "message"])
        _log(run, f"{cluster_name}: skipped by {_who(actor)}")
        audit_record(
            actor=actor,
            action="update_run.skip",
            target=run,
            team=run.team,
            detail={"cluster": cluster_name},
        )
    return run


def update_run_approve_stage(
    *, actor: AbstractBaseUser | None, run: UpdateRun, stage_index: int
) -> UpdateRun:
    """An operator or admin of the run's team lets a stage that waits for approval start."""
    if actor is None:
        raise PermissionDenied("An approval is a person's: name who approves.")
    require_role(actor, run.team, Role.OPERATOR, doing="approve update run stages", target=run)
    with transaction.atomic():
        run = _locked(run)
        _refuse(run, "approved", (RunState.WAITING_APPROVAL, RunState.PAUSED, RunState.RUNNING))
        stage = run.run_stages.select_for_update().filter(index=stage_index).first()
        if stage is None:
            raise ValidationError({"stage": f"The run has no stage {stage_index}."})
        if stage.state != StageState.WAITING_APPROVAL:
            raise ValidationError(
                {
                    "stage": f"Stage {stage.name} is {stage.get_state_display().lower()}, not "
                    "waiting for approval."
                }
            )
        stage.approved_by_id = actor.pk if actor is not None else None
        stage.approved_at = timezone.now()
        stage.save(update_fields=["approved_by", "approved_at"])
        if run.state == RunState.WAITING_APPROVAL:
            run.state = RunState.RUNNING
            run.save(update_fields=["state", "updated_at"])
        _log(run, f"Stage {stage.name} approved by {_who(actor)}")
        audit_record(
            actor=actor,
            action="update_run.approve",
            target=run,
            team=run.team,
            detail={"stage": stage.name, "index": stage.index},
        )
    return run


def update_run_check(*, run_id: UUID, tick: int | None = None, now: datetime | None = None) -> None:
    """One check of a running run (the task's work): do what is due, schedule the next.
    `tick`: the check a message was sent for; `now`: a clock for tests."""
    operation_id = (
        UpdateRun.objects.filter(pk=run_id).values_list("operation_id", flat=True).first()
    )
    if operation_id is not None:
        run_check(operation_id=operation_id, tick=tick, now=now)
