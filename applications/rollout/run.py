"""Running a rollout one check at a time (see the package's docstring)."""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from applications.guard import (
    placement_mark_scheduled,
    placement_mark_unschedulable,
    removes_everywhere,
)
from applications.models import (
    Application,
    ClusterWork,
    PlacementDecision,
    RolloutPhase,
    RolloutProgress,
    WorkState,
)
from applications.propagation import (
    SyncOutcome,
    objects_for,
    work_refresh,
    work_remove,
    work_sync,
    work_target,
)
from applications.render import RenderError
from applications.rollout.start import ROLLOUT_KIND, refusal_message, rollout_steps
from applications.spec import rollout_spec
from clusters.models import Cluster
from operations.choices import LogLevel, OperationState
from operations.dispatch import exclusive_operation, operation_send_check
from operations.models import Operation
from operations.services import (
    operation_claim,
    operation_finish,
    operation_should_stop,
    operation_update,
)

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # between health checks of a step that is not available yet
SOAK_CHECK_SECONDS = 10.0  # between health checks of a soaking canary


class RolloutFailed(Exception):
    pass


class _Superseded(Exception):
    """The progress row moved on under this check: someone else did it."""


class _Run:
    """One check of a rollout: does what is due now, from where `progress` stands."""

    progress: RolloutProgress

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.params = operation.params
        self.application = Application.objects.select_related("team", "placement").get(
            pk=self.params["application_id"]
        )
        self.strategy = rollout_spec(self.params["strategy"])
        # Confirmed by the user (evict everywhere): these clusters may all be emptied.
        self.evict: list[str] | None = self.params.get("evict")
        self.version = int(self.params.get("version") or 0)
        self.chosen: list[tuple[str, int]] = []
        self.tolerated: set[str] = set()
        if self.evict is None:
            decision = PlacementDecision.objects.get(
                application=self.application, version=self.params["decision_version"]
            )
            self.chosen = [(c["cluster"], int(c["replicas"])) for c in decision.decision["chosen"]]
            # Unreachable clusters still inside their toleration keep what they run.
            self.tolerated = {
                c["cluster"] for c in decision.decision["chosen"] if c.get("tolerated")
            }
        spec = self.application.placement.spec
        self.explicit_replicas = "replicas" in spec or (
            spec.get("division", "duplicated") != "duplicated"
        )

    def log(
        self, text: str, *, progress: int | None = None, level: LogLevel = LogLevel.INFO
    ) -> None:
        operation_update(operation_id=self.operation.pk, log=text, progress=progress, level=level)

    def plan(self) -> list[list[str]]:
        """The steps: the chosen clusters that exist, by rank, except tolerated ones."""
        names = [name for name, _ in self.chosen]
        existing = set(
            Cluster.objects.filter(team=self.application.team_id, name__in=names).values_list(
                "name", flat=True
            )
        )
        return rollout_steps(
            self.strategy, [n for n in names if n in existing and n not in self.tolerated]
        )

    def log_plan(self, steps: list[list[str]]) -> None:
        for name in sorted(self.tolerated):
            self.log(f"{name}: unreachable within its toleration; left as it is")
        if self.evict is None:
            self.log(
                f"Version {self.version} to {len(self.chosen)} cluster(s) in {len(steps)} "
                "step(s): " + " | ".join(", ".join(step) for step in steps),
                progress=1,
            )

    def admit(self) -> None:
        """Before anything is applied: every cluster of the plan must accept what it would
        get (guardrails, pre-apply checks such as enforce-mode policy rules), else the
        rollout fails with every refusal and no cluster is touched. Each apply checks again
        (`objects_for`), for a resumed rollout and for what changes meanwhile."""
        if self.evict is not None:
            return
        names = [name for step in self.progress.steps for name in step]
        replicas = dict(self.chosen)
        clusters = Cluster.objects.filter(team=self.application.team_id, name__in=names)
        version = self.application.versions.filter(number=self.version).first()
        if version is None:
            return  # applying says so, cluster by cluster
        manifests = version.manifests
        refused: list[str] = []
        for cluster in sorted(clusters, key=lambda c: names.index(c.name)):
            try:
                objects_for(
                    application=self.application,
                    cluster=cluster,
                    version=self.version,
                    replicas=replicas[cluster.name] if self.explicit_replicas else None,
                    manifests=manifests,
                )
            except RenderError as error:
                refused.append(f"{cluster.name}: {error}")
                self.log(f"{cluster.name}: {error}", level=LogLevel.ERROR)
        if refused:
            raise RolloutFailed("nothing was applied; " + "; ".join(refused))

    def _save(self) -> None:
        """Record where the rollout stands, unless another check has moved it on."""
        p = self.progress
        saved = RolloutProgress.objects.filter(pk=p.pk, tick=p.tick).update(
            step=p.step, phase=p.phase, deadline=p.deadline, changed=p.changed
        )
        if not saved:
            raise _Superseded

    def advance(self) -> float | None:
        """Do what is due now; the seconds until the next check, or None when done."""
        p = self.progress
        total = max(len(p.steps), 1)
        while True:
            if operation_should_stop(operation_id=self.operation.pk):
                raise RolloutFailed("canceled")
            now = timezone.now()
            if p.phase == RolloutPhase.APPLY:
                if p.step >= len(p.steps):
                    p.phase = RolloutPhase.PRUNE
                    continue
                self._apply(p.steps[p.step])
                p.phase = RolloutPhase.WAIT
                p.deadline = now + timedelta(seconds=self.strategy.health_timeout_seconds)
                self._save()
            elif p.phase == RolloutPhase.WAIT:
                waiting = self._not_available(p.steps[p.step])
                if waiting:
                    if p.deadline is not None and now > p.deadline:
                        raise RolloutFailed(
                            f"step {p.step + 1} not available within "
                            f"{self.strategy.health_timeout_seconds}s ({'; '.join(waiting)})"
                        )
                    return POLL_SECONDS
                soak = self.strategy.canary_soak_seconds
                if (
                    self.strategy.strategy == "canary"
                    and p.step == 0
                    and len(p.steps) > 1
                    and soak > 0
                ):
                    self.log(f"Canary available; watching it for {soak}s")
                    p.phase = RolloutPhase.SOAK
                    p.deadline = now + timedelta(seconds=soak)
                    self._save()
                    return min(SOAK_CHECK_SECONDS, float(soak))
                self._step_done(total)
            elif p.phase == RolloutPhase.SOAK:
                unhealthy = self._not_available(p.steps[p.step])
                if unhealthy:
                    raise RolloutFailed(f"canary became unhealthy: {'; '.join(unhealthy)}")
                remaining = (p.deadline - now).total_seconds() if p.deadline else 0.0
                if remaining > 0:
                    return min(SOAK_CHECK_SECONDS, remaining)
                self._step_done(total)
            else:
                self._prune()
                return None

    def _step_done(self, total: int) -> None:
        p = self.progress
        self.log(
            f"Step {p.step + 1}/{total} available: {', '.join(p.steps[p.step])}",
            progress=5 + int(85 * (p.step + 1) / total),
        )
        p.step += 1
        p.phase = RolloutPhase.APPLY
        p.deadline = None
        self._save()

    def _apply(self, step: list[str]) -> None:
        replicas = dict(self.chosen)
        clusters = {
            c.name: c for c in Cluster.objects.filter(team=self.application.team_id, name__in=step)
        }
        for name in step:
            work = work_target(
                application=self.application,
                cluster=clusters[name],
                version=self.version,
                replicas=replicas[name] if self.explicit_replicas else None,
            )
            if work.pk not in self.progress.changed:
                self.progress.changed.append(work.pk)
                self._save()  # before applying: a rollback must see it even if we die now
            outcome = work_sync(work)
            self._report(name, outcome)
            if not outcome.ok:
                raise RolloutFailed(f"{name}: {outcome.message}")

    def _not_available(self, step: list[str]) -> list[str]:
        """The step's clusters whose workloads are not all available, with the reason."""
        works = ClusterWork.objects.filter(
            application=self.application, cluster__name__in=step
        ).select_related("cluster")
        missing = set(step) - {w.cluster.name for w in works}
        problems = [f"{name}: its work is gone" for name in sorted(missing)]
        for work in works.order_by("cluster__name"):
            outcome = work_refresh(work)
            if not (outcome.ok and outcome.complete):
                problems.append(f"{work.cluster.name}: {outcome.message or 'not available'}")
        return problems

    def _prune(self) -> None:
        """Remove the application from the clusters that left the decision, unless that
        would leave it running nowhere without the user's confirmation."""
        names = [name for name, _ in self.chosen]
        leaving = list(
            ClusterWork.objects.filter(application=self.application)
            .exclude(cluster__name__in=names)
            .select_related("cluster")
        )
        live = sorted(w.cluster.name for w in leaving if w.state != WorkState.ORPHANED)
        if removes_everywhere(names, live) and not set(live) <= set(self.evict or ()):
            why = "The decision chose no cluster"
            placement_mark_unschedulable(application=self.application, reason=why, clusters=live)
            raise RolloutFailed(refusal_message(self.application, why, live))
        for work in leaving:
            outcome = work_remove(work)
            verb = "was evicted" if self.evict is not None else "left the placement"
            self.log(
                f"{work.cluster.name} {verb}: {outcome.message}",
                level=LogLevel.INFO if outcome.ok else LogLevel.WARNING,
            )
        if self.evict is not None:
            placement_mark_scheduled(application=self.application)

    def _report(self, name: str, outcome: SyncOutcome) -> None:
        if outcome.ok:
            self.log(
                f"{name}: applied ({outcome.changed} changed, {outcome.pruned} pruned)"
                + (f"; {outcome.message}" if outcome.message else "")
            )
        else:
            self.log(f"{name}: {outcome.message}", level=LogLevel.ERROR)

    def rollback(self) -> tuple[list[str], list[str]]:
        """Return the clusters changed so far to what they ran; (restored, not restored)."""
        restored, failed = [], []
        works = ClusterWork.objects.select_related("cluster").in_bulk(self.progress.changed)
        for pk in reversed(self.progress.changed):
            if (work := works.get(pk)) is None:
                continue
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
def rollout_run(*, operation_id: UUID, tick: int | None = None) -> None:
    """One check of a rollout (see the package's docstring). `tick` is the check a message
    was sent for; None (the first message, a resend by the operations sweeper) does the
    check that is due, if one is."""
    if not operation_claim(operation_id=operation_id):
        return
    progress = RolloutProgress.objects.filter(pk=operation_id).first()
    if progress is not None:
        if tick is not None and tick != progress.tick:
            return  # a duplicate of a check already done
        if tick is None and (wait := (progress.check_at - timezone.now()).total_seconds()) > 0:
            # Not due. The check's own message normally comes then; if it was lost (its
            # sender died between the commit and the send), this one stands in for it. A
            # spare message for the same tick is dropped by the tick comparison above.
            operation_send_check(operation_id, ROLLOUT_KIND, tick=progress.tick, countdown=wait)
            return
    operation = Operation.objects.get(pk=operation_id)
    run = _Run(operation)
    created = progress is None
    if progress is None:
        # The steps are stored with the row: a resumed rollout never sees a half-made plan.
        steps = run.plan()
        progress = RolloutProgress.objects.create(
            operation=operation, steps=steps, check_at=timezone.now()
        )
        run.log_plan(steps)
    run.progress = progress
    try:
        if created:
            run.admit()
        delay = run.advance()
    except _Superseded:
        return
    except RolloutFailed as failure:
        _fail(run, str(failure))
        return
    if delay is not None:
        with transaction.atomic():
            moved = RolloutProgress.objects.filter(pk=progress.pk, tick=progress.tick).update(
                tick=progress.tick + 1, check_at=timezone.now() + timedelta(seconds=delay)
            )
            if moved:  # exactly one next message per tick
                # Alive: the operations sweeper resends only rollouts whose checks stopped.
                Operation.objects.filter(pk=operation_id).update(updated_at=timezone.now())
                next_tick = progress.tick + 1
                transaction.on_commit(
                    lambda: operation_send_check(
                        operation_id, ROLLOUT_KIND, tick=next_tick, countdown=delay
                    )
                )
        return
    works = ClusterWork.objects.filter(application=run.application).select_related("cluster")
    done = (
        f"{run.application.name} removed from {', '.join(run.evict)}"
        if run.evict is not None
        else f"Version {run.version} available on {works.count()} cluster(s)"
    )
    operation_finish(
        operation_id=operation_id,
        state=OperationState.SUCCEEDED,
        message=done,
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


def _fail(run: _Run, reason: str) -> None:
    operation_id = run.operation.pk
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
        error=(
            "Eviction failed"
            if run.evict is not None
            else f"Rollout of version {run.version} failed"
        )
        + f": {reason}"
        + (f"; rolled back {len(restored)} cluster(s)" if restored else "")
        + (f"; could not roll back {', '.join(failed)} (retried by reconcile)" if failed else ""),
        result={"rolled_back": restored, "rollback_failed": failed},
    )
