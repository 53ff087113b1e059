"""Deregistering a pull-mode cluster with cleanup. The hub cannot reach the cluster, so the
deregistration Operation waits for its agent: the agent's next fetch of its work carries
the instruction (`agent_instruction`), the agent removes every object labelled as
Keelson's (`kube.ownership.remove_managed_objects`) and reports what it deleted
(`agent_cleanup_report`); the hub then revokes the agent and removes the cluster. An
agent that stays silent past KEELSON_AGENT_CLEANUP_TIMEOUT is revoked anyway, and the
operation lists what Keelson knows it put there and may be left (`pull_cleanups_expire`;
the higher layers answer `pull_cleanup_leftovers`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.models import AgentToken, Cluster
from operations.choices import LogLevel, OperationState
from operations.models import Operation
from operations.services import operation_finish, operation_update

KIND = "cluster.deregister"
# Sent with `cluster=`; each receiver returns the objects (`kind/namespace/name`) it knows
# Keelson put into the cluster (applications' work, policies' enforcement).
pull_cleanup_leftovers = Signal()


def pending_cleanup(cluster: Cluster) -> Operation | None:
    """The running deregistration with cleanup of a pull cluster, if any."""
    if cluster.mode != ClusterMode.PULL:
        return None
    return (
        Operation.objects.filter(
            kind=KIND,
            state=OperationState.RUNNING,
            params__cluster_id=cluster.pk,
            params__cleanup=True,
        )
        .order_by("created_at")
        .first()
    )


def pull_cleanup_wait(*, operation: Operation) -> None:
    """The deregistration task's step for a pull cluster: say what it waits for; the
    agent's report (or the timeout) finishes it."""
    timeout = settings.KEELSON_AGENT_CLEANUP_TIMEOUT
    if not operation.params.get("waiting"):
        Operation.objects.filter(pk=operation.pk).update(
            params={**operation.params, "waiting": True}
        )
        operation_update(
            operation_id=operation.pk,
            progress=10,
            message="Waiting for the agent to remove Keelson's objects",
            log=f"Waiting up to {timeout} s for the cluster's agent to clean up and report.",
        )
    pull_cleanups_expire(operation_ids=[operation.pk])


def agent_instruction(*, cluster: Cluster) -> dict[str, Any]:
    """What the agent must do besides its work: `{"cleanup": {"operation": id}}` while a
    deregistration with cleanup waits for it, else nothing."""
    operation = pending_cleanup(cluster)
    return {"cleanup": {"operation": str(operation.pk)}} if operation is not None else {}


def _remove(cluster: Cluster, operation: Operation, detail: dict[str, Any]) -> str:
    """Revoke the agent, audit and delete the cluster (one transaction)."""
    now = timezone.now()
    revoked = (
        AgentToken.objects.filter(cluster=cluster, revoked_at=None)
        .exclude(kind=AgentToken.Kind.BOOTSTRAP, used_at__isnull=False)
        .update(revoked_at=now)
    )
    audit_record(
        actor=operation.created_by,
        action="cluster.deregister",
        target=cluster,
        team=cluster.team,
        detail={"cleanup": True, "agents_revoked": revoked, **detail},
    )
    name = cluster.name
    cluster.delete()
    return name


def agent_cleanup_report(
    *, cluster: Cluster, operation_id: UUID, deleted: list[str], error: str = ""
) -> bool:
    """The agent's report of its cleanup. Success: the agent is revoked and the cluster
    removed. An error fails the operation and keeps the cluster (deregister again, with or
    without cleanup). False when no such cleanup waits (late or repeated report)."""
    operation = pending_cleanup(cluster)
    if operation is None or operation.pk != operation_id:
        return False
    for line in deleted[:200]:
        operation_update(operation_id=operation.pk, log=f"deleted {line}")
    if error:
        operation_update(operation_id=operation.pk, log=error[:1000], level=LogLevel.ERROR)
        return operation_finish(
            operation_id=operation.pk,
            state=OperationState.FAILED,
            error=f"The agent could not clean up: {error[:500]}",
            result={"deleted": deleted[:1000]},
        )
    with transaction.atomic():
        name = _remove(cluster, operation, {"deleted": len(deleted), "agent_reported": True})
        operation_finish(
            operation_id=operation.pk,
            state=OperationState.SUCCEEDED,
            message=f"Cluster {name} deregistered; its agent removed {len(deleted)} objects",
            result={"deleted": deleted[:1000]},
        )
    return True


def pull_cleanups_expire(
    *, now: datetime | None = None, operation_ids: list[UUID] | None = None
) -> int:
    """Cleanups whose agent stayed silent past the timeout: revoke it, remove the cluster
    and list what may be left in it. Returns how many expired."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.KEELSON_AGENT_CLEANUP_TIMEOUT)
    due = Operation.objects.filter(
        kind=KIND, state=OperationState.RUNNING, params__cleanup=True, started_at__lt=cutoff
    )
    if operation_ids is not None:
        due = due.filter(pk__in=operation_ids)
    expired = 0
    for operation in due:
        cluster = Cluster.objects.filter(
            pk=operation.params.get("cluster_id"), mode=ClusterMode.PULL
        ).first()
        if cluster is None:
            continue  # a push cleanup runs in its task, not here
        leftovers = sorted(
            {
                str(line)
                for _, answer in pull_cleanup_leftovers.send(sender=Cluster, cluster=cluster)
                for line in answer or ()
            }
        )
        timeout = settings.KEELSON_AGENT_CLEANUP_TIMEOUT
        with transaction.atomic():
            name = _remove(
                cluster, operation, {"agent_reported": False, "leftovers": leftovers[:200]}
            )
            operation_update(
                operation_id=operation.pk,
                log=f"The agent did not report within {timeout} s: revoked.",
                level=LogLevel.WARNING,
            )
            for line in leftovers[:200]:
                operation_update(
                    operation_id=operation.pk, log=f"may be left: {line}", level=LogLevel.WARNING
                )
            operation_finish(
                operation_id=operation.pk,
                state=OperationState.SUCCEEDED,
                message=(
                    f"Cluster {name} deregistered without its agent's cleanup; "
                    f"{len(leftovers)} objects may be left in it"
                ),
                result={"deleted": [], "leftovers": leftovers[:1000]},
            )
        expired += 1
    return expired
