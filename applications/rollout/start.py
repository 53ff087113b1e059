"""Starting rollouts (decide, guard, create the operation) and the confirmed eviction of an
application from every cluster it runs on."""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from applications.guard import (
    placement_mark_scheduled,
    placement_mark_unschedulable,
    removes_everywhere,
    running_clusters,
    unschedulable_reason,
)
from applications.holds import refuse_while_held
from applications.models import Application
from applications.services import placement_decide
from applications.spec import RolloutSpec, rollout_spec
from audit.services import audit_record
from operations.choices import OperationState
from operations.dispatch import operation_dispatch
from operations.models import Operation
from operations.services import operation_create

ROLLOUT_KIND = "application.rollout"
ACTIVE_STATES = (OperationState.PENDING, OperationState.RUNNING)


class RemovalRefused(ValidationError):
    """The decision chose no cluster: carrying it out would remove the application from
    every cluster it runs on. Raised after the decision and the Unschedulable mark are
    stored."""


def rollout_in_progress(application: Application) -> Operation | None:
    return Operation.objects.filter(
        kind=ROLLOUT_KIND,
        target_type=Application._meta.label_lower,
        target_id=str(application.pk),
        state__in=ACTIVE_STATES,
    ).first()


def refuse_while_rolling_out(application: Application) -> None:
    """For work that must not run beside a rollout, nor while an update run holds the
    application (call with the application locked)."""
    if (running := rollout_in_progress(application)) is not None:
        raise ValidationError(
            f"A rollout of {application.name} is in progress (operation {running.pk}); "
            "cancel it first."
        )
    refuse_while_held(application)


def refusal_message(application: Application, reason: str, clusters: list[str]) -> str:
    names = ", ".join(clusters)
    return (
        f"{reason}. {application.name} keeps running on {names} and is marked Unschedulable; "
        f"to remove it from every cluster, evict it everywhere naming {names}."
    )


def rollout_start(
    *,
    application: Application,
    actor: AbstractBaseUser | None,
    version: int | None = None,
    reason: str = "",
) -> Operation:
    """Decide the placement now and roll `version` (the newest when omitted) out to it.
    A decision that chose nothing is stored but not carried out where the application
    runs: it stays there, marked Unschedulable, and `RemovalRefused` says so."""
    strategy = rollout_spec(application.rollout)
    refused: RemovalRefused | None = None
    with transaction.atomic():
        locked = Application.objects.select_for_update().get(pk=application.pk)
        if (running := rollout_in_progress(locked)) is not None:
            raise ValidationError(
                f"A rollout of {locked.name} is in progress (operation {running.pk})."
            )
        refuse_while_held(locked)
        latest = locked.versions.values_list("number", flat=True).first() or 0
        number = version if version is not None else latest
        if not locked.versions.filter(number=number).exists():
            raise ValidationError({"version": f"{locked.name} has no version {number}."})
        decision = placement_decide(application=locked, actor=actor, version=number)
        where = running_clusters(locked)
        if removes_everywhere(decision.decision["chosen"], where):
            why = unschedulable_reason(decision.decision)
            placement_mark_unschedulable(
                application=locked, reason=why, clusters=where, actor=actor
            )
            refused = RemovalRefused(refusal_message(locked, why, where))
        else:
            placement_mark_scheduled(application=locked, actor=actor)
            operation = _rollout_create(
                application=locked,
                actor=actor,
                params={
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
    if refused is not None:
        raise refused  # after the commit: the decision and the mark are kept
    return operation


def application_evict_everywhere_start(
    *, application: Application, actor: AbstractBaseUser | None, clusters: list[str]
) -> Operation:
    """Remove the application from every cluster it runs on, which the caller confirms by
    naming exactly those clusters; the application itself is kept (a later rollout places
    it again). A rollout operation, so that no other rollout runs meanwhile."""
    with transaction.atomic():
        locked = Application.objects.select_for_update().get(pk=application.pk)
        refuse_while_rolling_out(locked)
        where = running_clusters(locked)
        if not where:
            raise ValidationError(f"{locked.name} does not run on any cluster.")
        if sorted(set(clusters)) != where or len(clusters) != len(where):
            raise ValidationError(
                {
                    "clusters": f"Name exactly the clusters {locked.name} runs on, to confirm "
                    f"its removal from all of them: {', '.join(where)}."
                }
            )
        operation = _rollout_create(
            application=locked,
            actor=actor,
            params={"evict": where, "strategy": rollout_spec(locked.rollout).as_json()},
            message=f"Removing {locked.name} from {', '.join(where)}",
        )
        audit_record(
            actor=actor,
            action="application.evict_everywhere",
            target=locked,
            team=locked.team,
            detail={"clusters": where},
        )
    return operation


def _rollout_create(
    *,
    application: Application,
    actor: AbstractBaseUser | None,
    params: dict[str, object],
    message: str,
) -> Operation:
    operation = operation_create(
        kind=ROLLOUT_KIND,
        created_by=actor,
        target=application,
        team=application.team,
        params={"application_id": application.pk, **params},
        message=message,
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
