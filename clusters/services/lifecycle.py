"""Changing and removing registered clusters; cluster sets."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.labels import LabelSelector, stamp_taints
from clusters.models import Cluster, ClusterSet
from clusters.realtime import publish_cluster_on_commit
from clusters.services.credentials import cluster_api_client
from clusters.services.pullcleanup import pull_cleanup_wait
from core.celery import PermanentError, TransientError
from kube.client import ClusterConnectError, clients
from kube.ownership import remove_managed_objects
from operations.choices import OperationState
from operations.dispatch import exclusive_operation, operation_dispatch
from operations.models import Operation
from operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_update,
)

EDITABLE = frozenset(
    {"display_name", "description", "provider", "region", "zone", "environment", "labels", "taints"}
)


@transaction.atomic
def cluster_update(
    *, cluster: Cluster, actor: AbstractBaseUser | None, changes: dict[str, Any]
) -> Cluster:
    """Change descriptive fields, labels and taints (validated; audited with a diff)."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
    if "taints" in changes:  # NoExecute taints keep the time they were added
        changes = {
            **changes,
            "taints": stamp_taints(changes["taints"], locked.taints, timezone.now()),
        }
    diff = {}
    for field, value in changes.items():
        before = getattr(locked, field)
        if before != value:
            diff[field] = {"from": before, "to": value}
            setattr(locked, field, value)
    if not diff:
        return locked
    locked.full_clean()
    locked.save()
    audit_record(actor=actor, action="cluster.update", target=locked, team=locked.team, detail=diff)
    publish_cluster_on_commit(locked.pk)
    return locked


def cluster_deregister(
    *, cluster: Cluster, actor: AbstractBaseUser | None, cleanup: bool
) -> Operation:
    """Start deregistration as an Operation: optionally remove what Keelson put in the
    cluster (a pull cluster's agent does it: clusters/services/pullcleanup.py), then
    delete the cluster and its credential and history from the hub."""
    with transaction.atomic():
        operation = operation_create(
            kind="cluster.deregister",
            created_by=actor,
            target=cluster,
            team=cluster.team,
            params={"cluster_id": cluster.pk, "cleanup": cleanup},
        )
        audit_record(
            actor=actor,
            action="cluster.deregister.request",
            target=cluster,
            team=cluster.team,
            detail={"cleanup": cleanup, "operation": str(operation.pk)},
        )
        operation_dispatch(operation)
    return operation


@exclusive_operation
def cluster_deregister_run(*, operation_id: UUID) -> None:
    """The deregistration task's work; safe to run again after a worker died."""
    if not operation_claim(operation_id=operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    cluster = Cluster.objects.filter(pk=operation.params["cluster_id"]).first()
    if cluster is None:
        operation_finish(
            operation_id=operation_id, state=OperationState.SUCCEEDED, message="Already removed"
        )
        return
    if operation.params.get("cleanup") and cluster.mode == ClusterMode.PULL:
        pull_cleanup_wait(operation=operation)  # the agent's report finishes it
        return
    deleted: list[str] = []
    if operation.params.get("cleanup"):
        operation_update(operation_id=operation_id, progress=5, log="Removing Keelson's objects")

        def progress(done: int, total: int, kind: str) -> None:
            if done % 10 == 0 or done == total:
                operation_update(operation_id=operation_id, progress=5 + int(85 * done / total))

        try:
            deleted = remove_managed_objects(cluster_api_client(cluster=cluster), progress=progress)
        except ClusterConnectError as error:
            if error.transient:
                raise TransientError(error.message) from None
            operation_finish(
                operation_id=operation_id, state=OperationState.FAILED, error=error.message
            )
            raise PermanentError(error.message) from None
        for line in deleted[:200]:
            operation_update(operation_id=operation_id, log=f"deleted {line}")
    with transaction.atomic():
        audit_record(
            actor=operation.created_by,
            action="cluster.deregister",
            target=cluster,
            team=cluster.team,
            detail={"cleanup": bool(operation.params.get("cleanup")), "deleted": len(deleted)},
        )
        name = cluster.name
        cluster.delete()
        operation_finish(
            operation_id=operation_id,
            state=OperationState.SUCCEEDED,
            message=f"Cluster {name} deregistered"
            + (f"; {len(deleted)} objects removed from it" if deleted else ""),
            result={"deleted": deleted[:1000]},
        )
    clients.drop(operation.params["cluster_id"])


@transaction.atomic
def cluster_set_save(
    *,
    actor: AbstractBaseUser | None,
    cluster_set: ClusterSet,
    members: list[Cluster] | None = None,
) -> ClusterSet:
    """Create or update a cluster set; members must belong to the set's team."""
    cluster_set.full_clean()
    cluster_set.save()
    if members is not None:
        foreign = [c.name for c in members if c.team_id != cluster_set.team_id]
        if foreign:
            raise ValidationError(
                {"members": f"Clusters of another team cannot join: {', '.join(foreign)}."}
            )
        cluster_set.members.set(members)
    audit_record(
        actor=actor,
        action="clusterset.save",
        target=cluster_set,
        team=cluster_set.team,
        detail={"selector": cluster_set.selector, "members": [c.name for c in members or []]},
    )
    return cluster_set


@transaction.atomic
def cluster_set_delete(*, actor: AbstractBaseUser | None, cluster_set: ClusterSet) -> None:
    """Delete a cluster set (its budgets go with it; policies scoped to it lose the scope)."""
    audit_record(
        actor=actor,
        action="clusterset.delete",
        target=cluster_set,
        team=cluster_set.team,
        detail={
            "selector": cluster_set.selector,
            "members": sorted(cluster_set.members.values_list("name", flat=True)),
        },
    )
    cluster_set.delete()


def cluster_set_clusters(*, cluster_set: ClusterSet) -> QuerySet[Cluster]:
    """Explicit members plus the team's clusters matching the selector (in SQL)."""
    explicit = Cluster.objects.filter(cluster_sets=cluster_set).values("pk")
    if not cluster_set.selector:
        return Cluster.objects.filter(pk__in=explicit)
    selector = LabelSelector.parse(cluster_set.selector)
    matched = Cluster.objects.filter(selector.to_q(), team_id=cluster_set.team_id).values("pk")
    return Cluster.objects.filter(Q(pk__in=explicit) | Q(pk__in=matched))
