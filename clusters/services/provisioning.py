"""Provisioning and lifecycle: every provider action is an Operation driven by an
idempotent Celery task (`cluster_lifecycle_task`).

A redelivered task (its worker died) finds the operation running and runs the provider
action again; providers make every step idempotent, so nothing is duplicated. Transient
errors are retried with backoff by Celery; the last attempt, and any permanent error,
fails the operation with the message.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Team
from audit.services import audit_record
from clusters.choices import ClusterMode, Lifecycle, Provider
from clusters.models import Cluster, ClusterProvisioning, ClusterTemplate
from clusters.providers.base import (
    ActionContext,
    ClusterSpec,
    OperationCanceled,
    PoolNodes,
    clean_image,
    clean_pool_version,
)
from clusters.providers.catalog import INSTANCE_TYPES
from clusters.providers.registry import get_provider
from clusters.services.collection import clusters_collect
from core.celery import PermanentError, TransientError
from operations.choices import LogLevel, OperationState
from operations.dispatch import exclusive_operation, operation_dispatch
from operations.models import Operation
from operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_should_stop,
    operation_update,
)

ACTIONS = {
    "cluster.provision": "provision",
    "cluster.scale": "scale",
    "cluster.upgrade": "upgrade",
    "cluster.delete": "delete",
}
# A node pool's rolling replacement: short checks re-sent with a countdown
# (clusters.services.pool_update), not one provider action.
POOL_UPDATE = "cluster.pool_update"
UNCHANGED = "unchanged"  # the code of the error refusing a pool update that changes nothing
LIFECYCLE_DURING = {
    "cluster.provision": Lifecycle.PROVISIONING,
    "cluster.scale": Lifecycle.SCALING,
    "cluster.upgrade": Lifecycle.UPGRADING,
    "cluster.delete": Lifecycle.DELETING,
    POOL_UPDATE: Lifecycle.UPGRADING,
}
_INFRASTRUCTURE_PROVIDER = {
    "aws": Provider.AWS,
    "azure": Provider.AZURE,
    "gcp": Provider.GCP,
    "vsphere": Provider.ONPREM,
    "kubeadm": Provider.ONPREM,
}


def cluster_provider_label(spec: ClusterSpec) -> str:
    """The Cluster.provider a spec yields (where the cluster runs, not how it is built)."""
    if spec.provider == "local":
        return Provider.LOCAL
    return _INFRASTRUCTURE_PROVIDER.get(str(spec.params.get("infrastructure", "")), Provider.OTHER)


def _local_quota_check(*, team: Team, spec: ClusterSpec, replacing: Cluster | None = None) -> None:
    """The `local` provider runs clusters on this host: each team may hold at most
    KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM of them with KEELSON_LOCAL_MAX_NODES_PER_TEAM nodes
    in all. `replacing` is the cluster whose spec `spec` replaces (a scale)."""
    if spec.provider != "local":
        return
    # One quota decision at a time per team: concurrent creates cannot both fit the last slot.
    Team.objects.select_for_update().filter(pk=team.pk).first()
    others = ClusterProvisioning.objects.filter(provider="local", cluster__team=team)
    if replacing is not None:
        others = others.exclude(cluster=replacing)
    specs = [ClusterSpec.from_json(raw) for raw in others.values_list("spec", flat=True)]
    max_clusters = settings.KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM
    max_nodes = settings.KEELSON_LOCAL_MAX_NODES_PER_TEAM
    if replacing is None and len(specs) + 1 > max_clusters:
        raise ValidationError(
            f"Team {team.name} has {len(specs)} local clusters: the quota is {max_clusters} "
            "(KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM). Delete one first."
        )
    used = sum(other.node_count for other in specs)
    if used + spec.node_count > max_nodes:
        raise ValidationError(
            f"Team {team.name}'s local clusters would have {used + spec.node_count} nodes: "
            f"the quota is {max_nodes} (KEELSON_LOCAL_MAX_NODES_PER_TEAM), {used} in use."
        )


def _busy(cluster: Cluster) -> Operation | None:
    return Operation.objects.filter(
        target_type="clusters.cluster",
        target_id=str(cluster.pk),
        kind__in=list(LIFECYCLE_DURING),
        state__in=[OperationState.PENDING, OperationState.RUNNING],
    ).first()


def _start(
    *,
    kind: str,
    cluster: Cluster,
    actor: AbstractBaseUser | None,
    spec: ClusterSpec,
    detail: dict[str, Any],
    params: dict[str, Any] | None = None,
) -> Operation:
    running = _busy(cluster)
    if running is not None:
        raise ValidationError(
            f"{cluster.name} is busy: {running.kind} ({running.state}) must end first."
        )
    operation = operation_create(
        kind=kind,
        created_by=actor,
        target=cluster,
        team=cluster.team,
        params={"cluster_id": cluster.pk, "spec": spec.as_json(), **(params or {})},
    )
    ClusterProvisioning.objects.filter(cluster=cluster).update(lifecycle=LIFECYCLE_DURING[kind])
    audit_record(
        actor=actor,
        action=kind,
        target=cluster,
        team=cluster.team,
        detail={**detail, "operation": str(operation.pk)},
    )
    operation_dispatch(operation)
    return operation


@transaction.atomic
def cluster_create(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    spec: ClusterSpec,
    labels: dict[str, str] | None = None,
    environment: str = "",
    description: str = "",
    template: ClusterTemplate | None = None,
) -> Operation:
    """Validate the spec with its provider, create the (Unknown) cluster, start building."""
    get_provider(spec.provider).validate(spec)
    _local_quota_check(team=team, spec=spec)
    cluster = Cluster(
        name=name,
        team=team,
        provider=cluster_provider_label(spec),
        region=spec.region,
        environment=environment,
        description=description,
        labels=labels or {},
        mode=ClusterMode.PUSH,
    )
    if actor is not None and actor.is_authenticated:
        cluster.created_by_id = actor.pk
    if Cluster.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A cluster named {name!r} exists."})
    cluster.full_clean()
    cluster.save()
    ClusterProvisioning.objects.create(
        cluster=cluster, provider=spec.provider, spec=spec.as_json(), template=template
    )
    return _start(
        kind="cluster.provision",
        cluster=cluster,
        actor=actor,
        spec=spec,
        detail={"provider": spec.provider, "nodes": spec.node_count},
    )


def _provisioned(cluster: Cluster) -> tuple[ClusterProvisioning, ClusterSpec]:
    provisioning = ClusterProvisioning.objects.filter(cluster=cluster).first()
    if provisioning is None:
        raise ValidationError(
            f"{cluster.name} was registered, not created by Keelson: its lifecycle is managed "
            "elsewhere."
        )
    return provisioning, ClusterSpec.from_json(provisioning.spec)


@transaction.atomic
def cluster_scale(
    *, actor: AbstractBaseUser | None, cluster: Cluster, pool: str, count: int
) -> Operation:
    provisioning, spec = _provisioned(cluster)
    provider = get_provider(provisioning.provider)
    if not provider.capabilities().scale:
        raise ValidationError(f"The {provider.name} provider cannot scale node pools.")
    previous = spec.pool(pool).count
    wanted = spec.with_pool_count(pool, count)
    provider.validate(wanted)
    _local_quota_check(team=cluster.team, spec=wanted, replacing=cluster)
    return _start(
        kind="cluster.scale",
        cluster=cluster,
        actor=actor,
        spec=wanted,
        detail={"pool": pool, "from": previous, "to": count},
    )


@transaction.atomic
def cluster_upgrade(*, actor: AbstractBaseUser | None, cluster: Cluster, version: str) -> Operation:
    provisioning, spec = _provisioned(cluster)
    provider = get_provider(provisioning.provider)
    if not provider.capabilities().upgrade:
        raise ValidationError(f"The {provider.name} provider cannot upgrade clusters.")
    wanted = spec.with_version(version)
    provider.validate(wanted)
    return _start(
        kind="cluster.upgrade",
        cluster=cluster,
        actor=actor,
        spec=wanted,
        detail={"from": spec.kubernetes_version, "to": wanted.kubernetes_version},
    )


@transaction.atomic
def cluster_pool_update(
    *,
    actor: AbstractBaseUser | None,
    cluster: Cluster,
    pool: str,
    image: str | None = None,
    instance_type: str | None = None,
    version: str | None = None,
) -> Operation:
    """Replace `pool`'s nodes one by one with nodes of the new image, instance type and/or
    kubelet version ("" for the default image, the cluster's version), draining each
    through the Eviction API (clusters.services.pool_update). None leaves a value as is."""
    provisioning, spec = _provisioned(cluster)
    provider = get_provider(provisioning.provider)
    capabilities = provider.capabilities()
    if not capabilities.update_pool or not isinstance(provider, PoolNodes):
        raise ValidationError(
            capabilities.update_pool_reason
            or f"The {provider.name} provider cannot update node pools."
        )
    current = spec.pool(pool)
    changes = pool_changes(image, instance_type, version)
    try:
        wanted = spec.with_pool(pool, **changes)
    except ValidationError as error:  # the skew policy: name the field that breaks it
        raise ValidationError(
            {next(iter(changes)) if len(changes) == 1 else "pool": error.messages}
        ) from None
    target = wanted.pool(pool)
    if target.runs(wanted.kubernetes_version) == current.runs(
        spec.kubernetes_version
    ) and _pool_in_place(provider, cluster, wanted, pool):
        already = f"Node pool {pool} runs {current.describe(spec.kubernetes_version)} already."
        raise ValidationError({"pool": ValidationError(already, code=UNCHANGED)})
    provider.validate(wanted)
    operation = _start(
        kind=POOL_UPDATE,
        cluster=cluster,
        actor=actor,
        spec=wanted,
        detail={
            "pool": pool,
            "from": current.runs(spec.kubernetes_version),
            "to": target.runs(wanted.kubernetes_version),
        },
        params={
            "pool": pool,
            "previous": {
                "image": current.image,
                "instance_type": current.instance_type,
                "version": current.version,
            },
        },
    )
    # Where the replacement stands, saved by each check (clusters.services.pool_update).
    Operation.objects.filter(pk=operation.pk).update(result={"tick": 0})
    return operation


def _pool_in_place(provider: PoolNodes, cluster: Cluster, spec: ClusterSpec, pool: str) -> bool:
    """Whether the provider runs exactly the nodes `spec` gives `pool` (not so after an
    update that failed half-way: then the same values are worth applying again)."""
    count = spec.pool(pool).count
    wanted = {provider.pool_node_name(cluster, spec, pool, index) for index in range(count)}
    try:
        return set(provider.pool_nodes(cluster, pool)) == wanted
    except PermanentError:
        raise ValidationError(
            f"The nodes of {cluster.name} cannot be read: is it running?"
        ) from None


def pool_changes(
    image: str | None, instance_type: str | None, version: str | None
) -> dict[str, str]:
    """The pool fields to change, validated (ValidationError names the field)."""
    changes: dict[str, str] = {}
    try:
        if image is not None:
            changes["image"] = clean_image(image)
    except ValueError as error:
        raise ValidationError({"image": str(error)}) from None
    try:
        if version is not None:
            changes["version"] = clean_pool_version(version)
    except ValueError as error:
        raise ValidationError({"version": str(error)}) from None
    if instance_type is not None:
        if instance_type not in INSTANCE_TYPES:
            raise ValidationError({"instance_type": f"Unknown instance type {instance_type!r}."})
        changes["instance_type"] = instance_type
    if not changes:
        raise ValidationError("Give a new image, instance type or version for the pool.")
    return changes


@transaction.atomic
def cluster_destroy(*, actor: AbstractBaseUser | None, cluster: Cluster) -> Operation:
    """Delete the cluster itself (its infrastructure), then forget it."""
    provisioning, spec = _provisioned(cluster)
    return _start(
        kind="cluster.delete",
        cluster=cluster,
        actor=actor,
        spec=spec,
        detail={"provider": provisioning.provider},
    )


def _context(operation: Operation, cluster: Cluster) -> ActionContext:
    def report(progress: int | None, message: str | None, log: str | None) -> None:
        operation_update(operation_id=operation.pk, progress=progress, message=message, log=log)

    return ActionContext(
        cluster=cluster,
        report=report,
        canceled=lambda: operation_should_stop(operation_id=operation.pk),
    )


@exclusive_operation
def cluster_lifecycle_run(*, operation_id: UUID, final_attempt: bool = True) -> None:
    """Run (or resume) a provisioning operation. Raises TransientError for Celery to retry,
    unless this is the final attempt."""
    if not operation_claim(operation_id=operation_id):
        lifecycle_settle_unclaimed(operation_id)
        return
    operation = Operation.objects.select_related("created_by").get(pk=operation_id)
    cluster = (
        Cluster.objects.select_related("team").filter(pk=operation.params["cluster_id"]).first()
    )
    if cluster is None:
        state = (
            OperationState.SUCCEEDED
            if operation.kind == "cluster.delete"
            else OperationState.FAILED
        )
        operation_finish(operation_id=operation_id, state=state, message="The cluster is gone")
        return
    provisioning = ClusterProvisioning.objects.get(cluster=cluster)
    spec = ClusterSpec.from_json(operation.params["spec"])
    provider = get_provider(provisioning.provider)
    action = ACTIONS[operation.kind]
    try:
        getattr(provider, action)(_context(operation, cluster), spec)
    except OperationCanceled:
        _failed(
            operation,
            provisioning,
            OperationState.CANCELED,
            "Canceled; the cluster may be partly built.",
        )
        return
    except PermanentError as error:
        _failed(operation, provisioning, OperationState.FAILED, str(error))
        return
    except TransientError as error:
        if final_attempt:
            _failed(
                operation, provisioning, OperationState.FAILED, f"Gave up after retries: {error}"
            )
            return
        operation_update(
            operation_id=operation_id, log=f"Will retry: {error}", level=LogLevel.WARNING
        )
        raise
    _succeeded(operation, cluster, provisioning, spec)


def _failed(
    operation: Operation, provisioning: ClusterProvisioning, state: OperationState, message: str
) -> None:
    # A failed scale or upgrade leaves a working cluster; a failed build or delete does not.
    broken = operation.kind in ("cluster.provision", "cluster.delete")
    provisioning.lifecycle = Lifecycle.FAILED if broken else Lifecycle.ACTIVE
    provisioning.save(update_fields=["lifecycle", "updated_at"])
    operation_finish(
        operation_id=operation.pk,
        state=state,
        message=message if state == OperationState.CANCELED else "Failed",
        error=message if state == OperationState.FAILED else "",
    )


def _succeeded(
    operation: Operation, cluster: Cluster, provisioning: ClusterProvisioning, spec: ClusterSpec
) -> None:
    if operation.kind == "cluster.delete":
        with transaction.atomic():
            audit_record(
                actor=operation.created_by,
                action="cluster.deleted",
                target=cluster,
                team=cluster.team,
            )
            name = cluster.name
            cluster.delete()
            operation_finish(
                operation_id=operation.pk,
                state=OperationState.SUCCEEDED,
                message=f"Cluster {name} deleted",
            )
        return
    provisioning.spec = spec.as_json()
    provisioning.lifecycle = Lifecycle.ACTIVE
    provisioning.save(update_fields=["spec", "lifecycle", "updated_at"])
    clusters_collect(cluster_ids=[cluster.pk])
    verb = {"provision": "is ready", "scale": "scaled", "upgrade": "upgraded"}[
        ACTIONS[operation.kind]
    ]
    operation_finish(
        operation_id=operation.pk,
        state=OperationState.SUCCEEDED,
        message=f"Cluster {cluster.name} {verb}",
        result={"nodes": spec.node_count, "version": spec.kubernetes_version},
    )


def lifecycle_settle_unclaimed(operation_id: UUID) -> None:
    """Canceled before it started: put the cluster's lifecycle back where it belongs."""
    operation = Operation.objects.filter(pk=operation_id, state=OperationState.CANCELED).first()
    if operation is None:
        return
    lifecycle = Lifecycle.FAILED if operation.kind == "cluster.provision" else Lifecycle.ACTIVE
    ClusterProvisioning.objects.filter(cluster_id=operation.params.get("cluster_id")).update(
        lifecycle=lifecycle
    )
