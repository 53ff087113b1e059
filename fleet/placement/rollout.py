"""Rollouts: bring the clusters of a placement decision to an application version, step by
step under a strategy, as an Operation with live progress.

- all_at_once: one step with every cluster;
- rolling: steps of `max_concurrency` clusters, each available before the next starts;
- canary: the first `canary_clusters` (by rank), available and then still available after
  `canary_soak_seconds`, then the rest in steps of `max_concurrency`.

A step that is not available within `health_timeout_seconds` (or cannot be applied) fails
the rollout; with `rollback` the clusters changed so far go back to what they ran before
(or lose the application, if it is new to them). Clusters that left the decision lose the
application at the end. Re-running a rollout whose worker died resumes it: applying is
idempotent and each cluster's previous version is remembered once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from clusters.models import Cluster
from fleet.audit.services import audit_record
from fleet.operations.choices import LogLevel, OperationState
from fleet.operations.dispatch import exclusive_operation, operation_dispatch
from fleet.operations.models import Operation
from fleet.operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_should_stop,
    operation_update,
)
from fleet.placement.models import Application, ClusterWork, PlacementDecision
from fleet.placement.propagation import (
    SyncOutcome,
    work_refresh,
    work_remove,
    work_sync,
    work_target,
)
from fleet.placement.spec import RolloutSpec, rollout_spec

ROLLOUT_KIND = "application.rollout"
POLL_SECONDS = 2.0
ACTIVE_STATES = (OperationState.PENDING, OperationState.RUNNING)


class RolloutFailed(Exception):
    pass


def rollout_in_progress(application: Application) -> Operation | None:
    return Operation.objects.filter(
        kind=ROLLOUT_KIND,
        target_type=Application._meta.label_lower,
        target_id=str(application.pk),
        state__in=ACTIVE_STATES,
    ).first()


def rollout_start(
    *,
    application: Application,
    actor: AbstractBaseUser | None,
    version: int | None = None,
    reason: str = "",
) -> Operation:
    """Decide the placement now and roll `version` (the newest when omitted) out to it."""
    from fleet.placement.services import placement_decide

    strategy = rollout_spec(application.rollout)
    with transaction.atomic():
        locked = Application.objects.select_for_update().get(pk=application.pk)
        if (running := rollout_in_progress(locked)) is not None:
            raise ValidationError(
                f"A rollout of {locked.name} is in progress (operation {running.pk})."
            )
        latest = locked.versions.values_list("number", flat=True).first() or 0
        number = version if version is not None else latest
        if not locked.versions.filter(number=number).exists():
            raise ValidationError({"version": f"{locked.name} has no version {number}."})
        decision = placement_decide(application=locked, actor=actor, version=number)
        operation = operation_create(
            kind=ROLLOUT_KIND,
            created_by=actor,
            target=locked,
            team=locked.team,
            params={
                "application_id": locked.pk,
                "version": number,
                "decision_version": decision.version,
                "strategy": strategy.as_json(),
                "reason": reason,
            },
            message=f"Rolling out version {number} ({strategy.strategy})",
        )
        audit_record(
            actor=actor,
            action="application.rollout",
            target=locked,
            team=locked.team,
            detail={"version": number, "decision": decision.version, "reason": reason},
        )
        operation_dispatch(operation)
    return operation


def rollout_steps(strategy: RolloutSpec, clusters: list[str]) -> list[list[str]]:
    def chunks(names: list[str], size: int) -> Iterator[list[str]]:
        for start in range(0, len(names), size):
            yield names[start : start + size]

    if not clusters:
        return []
    if strategy.strategy == "all_at_once":
        return [list(clusters)]
    if strategy.strategy == "rolling":
        return list(chunks(clusters, strategy.max_concurrency))
    canary = clusters[: strategy.canary_clusters]
    return [canary, *chunks(clusters[strategy.canary_clusters :], strategy.max_concurrency)]


class _Run:
    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.params = operation.params
        self.application = Application.objects.select_related("team").get(
            pk=self.params["application_id"]
        )
        self.strategy = rollout_spec(self.params["strategy"])
        self.version = int(self.params["version"])
        decision = PlacementDecision.objects.get(
            application=self.application, version=self.params["decision_version"]
        )
        self.chosen = [(c["cluster"], int(c["replicas"])) for c in decision.decision["chosen"]]
        # Unreachable clusters still inside their toleration keep what they run.
        self.tolerated = {c["cluster"] for c in decision.decision["chosen"] if c.get("tolerated")}
        self.explicit_replicas = "replicas" in self.application.placement.spec or (
            self.application.placement.spec.get("division", "duplicated") != "duplicated"
        )
        self.changed: list[ClusterWork] = []

    def log(
        self, text: str, *, progress: int | None = None, level: LogLevel = LogLevel.INFO
    ) -> None:
        operation_update(operation_id=self.operation.pk, log=text, progress=progress, level=level)

    def run(self) -> None:
        names = [name for name, _ in self.chosen]
        replicas = dict(self.chosen)
        clusters = {c.name: c for c in Cluster.objects.filter(team=self.application.team_id)}
        steps = rollout_steps(
            self.strategy, [n for n in names if n in clusters and n not in self.tolerated]
        )
        total = max(len(steps), 1)
        for name in sorted(self.tolerated):
            self.log(f"{name}: unreachable within its toleration; left as it is")
        self.log(
            f"Version {self.version} to {len(names)} cluster(s) in {len(steps)} step(s): "
            + " | ".join(", ".join(step) for step in steps),
            progress=1,
        )
        for index, step in enumerate(steps):
            if operation_should_stop(operation_id=self.operation.pk):
                raise RolloutFailed("canceled")
            works = []
            for name in step:
                work = work_target(
                    application=self.application,
                    cluster=clusters[name],
                    version=self.version,
                    replicas=replicas[name] if self.explicit_replicas else None,
                )
                self.changed.append(work)
                outcome = work_sync(work)
                self._report(name, outcome)
                if not outcome.ok:
                    raise RolloutFailed(f"{name}: {outcome.message}")
                works.append(work)
            self._wait_available(works, step, index, total)
            if self.strategy.strategy == "canary" and index == 0 and len(steps) > 1:
                self._soak(works, step)
            self.log(
                f"Step {index + 1}/{total} available: {', '.join(step)}",
                progress=5 + int(85 * (index + 1) / total),
            )
        leaving = ClusterWork.objects.filter(application=self.application).exclude(
            cluster__name__in=names
        )
        for work in leaving.select_related("cluster"):
            outcome = work_remove(work)
            self.log(
                f"{work.cluster.name} left the placement: {outcome.message}",
                level=LogLevel.INFO if outcome.ok else LogLevel.WARNING,
            )

    def _report(self, name: str, outcome: SyncOutcome) -> None:
        if outcome.ok:
            self.log(
                f"{name}: applied ({outcome.changed} changed, {outcome.pruned} pruned)"
                + (f"; {outcome.message}" if outcome.message else "")
            )
        else:
            self.log(f"{name}: {outcome.message}", level=LogLevel.ERROR)

    def _wait_available(
        self, works: list[ClusterWork], step: list[str], index: int, total: int
    ) -> None:
        deadline = time.monotonic() + self.strategy.health_timeout_seconds
        waiting = {work.pk: work for work in works}
        last: dict[int, SyncOutcome] = {}
        while waiting:
            for pk, work in list(waiting.items()):
                last[pk] = outcome = work_refresh(work)
                if outcome.ok and outcome.complete:
                    del waiting[pk]
            if not waiting:
                return
            if time.monotonic() > deadline:
                detail = "; ".join(
                    f"{w.cluster.name}: {last[pk].message or 'not available'}"
                    for pk, w in waiting.items()
                )
                raise RolloutFailed(
                    f"step {index + 1} not available within "
                    f"{self.strategy.health_timeout_seconds}s ({detail})"
                )
            if operation_should_stop(operation_id=self.operation.pk):
                raise RolloutFailed("canceled")
            time.sleep(POLL_SECONDS)

    def _soak(self, works: list[ClusterWork], step: list[str]) -> None:
        self.log(f"Canary available; watching it for {self.strategy.canary_soak_seconds}s")
        deadline = time.monotonic() + self.strategy.canary_soak_seconds
        while True:
            for work in works:
                outcome = work_refresh(work)
                if not (outcome.ok and outcome.complete):
                    raise RolloutFailed(
                        f"canary {work.cluster.name} became unhealthy: {outcome.message}"
                    )
            if time.monotonic() >= deadline:
                return
            time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))

    def rollback(self) -> tuple[list[str], list[str]]:
        """Return the clusters changed so far to what they ran; (restored, not restored)."""
        restored, failed = [], []
        for work in reversed(self.changed):
            work.refresh_from_db()
            name = work.cluster.name
            if work.previous_version is None:
                outcome = work_remove(work)
                what = "removed"
            else:
                ClusterWork.objects.filter(pk=work.pk).update(
                    desired_version=work.previous_version, replicas=work.previous_replicas
                )
                outcome = work_sync(work)
                what = f"back to version {work.previous_version}"
            if outcome.ok:
                restored.append(f"{name}: {what}")
                self.log(f"rollback {name}: {what}", level=LogLevel.WARNING)
            else:
                failed.append(name)
                self.log(
                    f"rollback {name} failed: {outcome.message}; the next reconcile retries",
                    level=LogLevel.ERROR,
                )
        return restored, failed


@exclusive_operation
def rollout_run(*, operation_id: UUID) -> None:
    """The rollout task's work (see the module's docstring)."""
    if not operation_claim(operation_id=operation_id):
        return
    run = _Run(Operation.objects.get(pk=operation_id))
    try:
        run.run()
    except RolloutFailed as failure:
        reason = str(failure)
        if reason == "canceled":
            operation_finish(
                operation_id=operation_id,
                state=OperationState.CANCELED,
                message="Canceled; clusters keep what they were given",
            )
            return
        run.log(f"Rollout failed: {reason}", level=LogLevel.ERROR)
        restored, failed = run.rollback() if run.strategy.rollback else ([], [])
        operation_finish(
            operation_id=operation_id,
            state=OperationState.FAILED,
            error=f"Rollout of version {run.version} failed: {reason}"
            + (f"; rolled back {len(restored)} cluster(s)" if restored else "")
            + (
                f"; could not roll back {', '.join(failed)} (retried by reconcile)"
                if failed
                else ""
            ),
            result={"rolled_back": restored, "rollback_failed": failed},
        )
        return
    works = ClusterWork.objects.filter(application=run.application).select_related("cluster")
    operation_finish(
        operation_id=operation_id,
        state=OperationState.SUCCEEDED,
        message=f"Version {run.version} available on {works.count()} cluster(s)",
        result={
            "clusters": {
                w.cluster.name: {
                    "version": w.applied_version,
                    "available": w.available_replicas,
                    "desired": w.desired_replicas,
                }
                for w in works
            }
        },
    )


DELETE_KIND = "application.delete"


def application_delete_start(
    *, application: Application, actor: AbstractBaseUser | None
) -> Operation:
    """Remove the application from every cluster, then forget it (an Operation)."""
    with transaction.atomic():
        locked = Application.objects.select_for_update().get(pk=application.pk)
        if (running := rollout_in_progress(locked)) is not None:
            raise ValidationError(
                f"A rollout of {locked.name} is in progress (operation {running.pk}); "
                "cancel it first."
            )
        operation = operation_create(
            kind=DELETE_KIND,
            created_by=actor,
            target=locked,
            team=locked.team,
            params={"application_id": locked.pk},
            message=f"Removing {locked.name} from its clusters",
        )
        audit_record(actor=actor, action="application.delete", target=locked, team=locked.team)
        operation_dispatch(operation)
    return operation


@exclusive_operation
def application_delete_run(*, operation_id: UUID) -> None:
    if not operation_claim(operation_id=operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    application = Application.objects.filter(pk=operation.params["application_id"]).first()
    if application is None:
        operation_finish(
            operation_id=operation_id, state=OperationState.SUCCEEDED, message="Already removed"
        )
        return
    works = list(ClusterWork.objects.filter(application=application).select_related("cluster"))
    failed = []
    for index, work in enumerate(works, start=1):
        outcome = work_remove(work)
        operation_update(
            operation_id=operation_id,
            progress=int(90 * index / len(works)),
            log=f"{work.cluster.name}: {outcome.message}",
            level=LogLevel.INFO if outcome.ok else LogLevel.ERROR,
        )
        if not outcome.ok:
            failed.append(work.cluster.name)
    if failed:
        operation_finish(
            operation_id=operation_id,
            state=OperationState.FAILED,
            error=f"Could not remove {application.name} from {', '.join(failed)}; the "
            "application is kept so that removal can be retried.",
        )
        return
    name = application.name
    application.delete()
    operation_finish(
        operation_id=operation_id,
        state=OperationState.SUCCEEDED,
        message=f"{name} removed from {len(works)} cluster(s) and deleted",
    )
