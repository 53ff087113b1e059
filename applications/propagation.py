"""Each application's work in each cluster (ClusterWork): render the desired version for the
cluster, apply it, record what is there and how it is doing, remove it when the cluster
leaves the decision. Push clusters are called from here; pull clusters fetch their work
through the agent API (`agent_work`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from applications import admission
from applications.guardrails import guardrail_errors
from applications.manifests import ManifestError
from applications.models import Application, ApplicationVersion, ClusterWork, WorkState
from applications.overrides import overrides_spec
from applications.render import RenderError, Target, render, rendered_hash
from clusters.choices import ClusterMode
from clusters.models import Cluster
from clusters.services.credentials import cluster_api_client
from kube.apply import delete_object
from kube.client import ClusterConnectError
from kube.ownership import ref_key
from kube.sync import apply_objects, workload_status

logger = logging.getLogger(__name__)


@dataclass
class SyncOutcome:
    ok: bool
    complete: bool = False
    message: str = ""
    changed: int = 0
    drifted: int = 0
    pruned: int = 0


def work_render(
    work: ClusterWork, *, version: int | None = None, manifests: Any = None, admit: bool = True
) -> list[dict[str, Any]]:
    """The work's objects at `version` (default: desired); `manifests` when the caller
    read that version's already (agent_work reads all of a cluster's in one query);
    `admit=False` when the caller runs the pre-apply checks itself (agent_work: once for
    all of a cluster's work)."""
    number = version if version is not None else work.desired_version
    return objects_for(
        application=work.application,
        cluster=work.cluster,
        version=number,
        replicas=work.replicas,
        manifests=manifests,
        admit=admit,
    )


def objects_for(
    *,
    application: Application,
    cluster: Cluster,
    version: int,
    replicas: int | None,
    manifests: Any = None,
    admit: bool = True,
) -> list[dict[str, Any]]:
    """What Keelson would write for `application` at `version` into `cluster`, checked:
    RenderError when it cannot be rendered, the team's guardrails refuse it, or a pre-apply
    check (`applications.admission`: e.g. an enforce-mode policy rule) refuses it."""
    if manifests is None:
        manifests = application.versions.get(number=version).manifests
    try:
        objects = render(
            application=application.name,
            namespace=application.namespace,
            version=version,
            manifests=manifests,
            target=Target(cluster.name, cluster.labels, replicas),
            overrides=overrides_spec(application.overrides),
        )
    except RenderError:
        raise
    except (ManifestError, ValidationError) as error:
        raise RenderError(f"version {version} cannot be rendered: {error}") from None
    except Exception as error:
        # Stored data that bypassed validation must fail this work, not the whole sync.
        logger.exception("rendering %s v%s failed", application.name, version)
        raise RenderError(
            f"version {version} cannot be rendered ({type(error).__name__})"
        ) from None
    # The team's guardrails may have narrowed since the version was saved, and overrides
    # may move objects: what is about to be applied is checked again.
    refused = guardrail_errors(
        team=application.team, namespace=application.namespace, objects=objects
    )
    if refused:
        raise RenderError("refused by the team's guardrails: " + " ".join(refused))
    refusals = admission.run(cluster, objects) if admit else []
    if refusals:
        raise RenderError(f"{REFUSED}{admission.summary(refusals)}")
    return objects


REFUSED = "refused before apply: "


def work_target(
    *, application: Application, cluster: Cluster, version: int, replicas: int | None
) -> ClusterWork:
    """Point the cluster's work at `version`; remember what it ran for a rollback. Safe to
    call again for the same version (a rollout resumed after its worker died)."""
    with transaction.atomic():
        work, created = ClusterWork.objects.select_for_update().get_or_create(
            application=application,
            cluster=cluster,
            defaults={"desired_version": version, "replicas": replicas},
        )
        if not created and (work.desired_version, work.replicas) != (version, replicas):
            work.previous_version = work.applied_version
            work.previous_replicas = work.replicas
            work.desired_version, work.replicas = version, replicas
            work.state = WorkState.PENDING
            work.save()
    return work


def _save(work: ClusterWork, **changes: Any) -> None:
    for key, value in changes.items():
        setattr(work, key, value)
    work.save(update_fields=[*changes, "updated_at"])


def work_sync(work: ClusterWork) -> SyncOutcome:
    """Apply the work's desired version to its cluster and read the status back. Applying
    the same version again corrects drift (an edited replica count, a deleted Service)."""
    work = ClusterWork.objects.select_related("application__team", "cluster").get(pk=work.pk)
    try:
        objects = work_render(work)
    except RenderError as error:
        _save(work, state=WorkState.FAILED, message=str(error))
        return SyncOutcome(ok=False, message=str(error))
    if work.cluster.mode == ClusterMode.PULL:
        # The agent fetches and applies it; `agent_work` records the delivery.
        if work.applied_version != work.desired_version:
            _save(work, message="Waiting for the agent to fetch the work")
        return SyncOutcome(ok=True, complete=True, message="delivered through the agent")
    same_version = work.applied_version == work.desired_version
    try:
        api = cluster_api_client(cluster=work.cluster)
        applied = apply_objects(api, objects, previous=work.applied_objects)
        status = workload_status(api, applied.refs)
    except ClusterConnectError as error:
        _save(work, state=WorkState.FAILED, message=error.message, synced_at=timezone.now())
        return SyncOutcome(ok=False, message=error.message)
    drifted = len(applied.changed) if same_version else 0
    message = "; ".join(status.problems[:3])
    if drifted:
        message = f"drift corrected: {', '.join(applied.changed[:5])}" + (
            f"; {message}" if message else ""
        )
        logger.info(
            "application %s: drift corrected in %s: %s",
            work.application.name,
            work.cluster.name,
            ", ".join(applied.changed[:20]),
        )
    _save(
        work,
        applied_version=work.desired_version,
        applied_objects=applied.refs,
        state=WorkState.AVAILABLE if status.complete else WorkState.APPLIED,
        desired_replicas=status.desired,
        available_replicas=status.available,
        message=message,
        drift_corrections=work.drift_corrections + drifted,
        synced_at=timezone.now(),
    )
    return SyncOutcome(
        ok=True,
        complete=status.complete,
        message=message,
        changed=len(applied.changed),
        drifted=drifted,
        pruned=len(applied.pruned),
    )


def work_refresh(work: ClusterWork) -> SyncOutcome:
    """Read the workloads' status without applying anything. A pull cluster's status is
    what its agent last reported for the desired version."""
    work = ClusterWork.objects.select_related("cluster").get(pk=work.pk)
    if work.cluster.mode == ClusterMode.PULL:
        if work.state == WorkState.FAILED:
            return SyncOutcome(ok=False, message=work.message)
        return SyncOutcome(
            ok=True,
            complete=work.state == WorkState.AVAILABLE,
            message=work.message or "waiting for the agent's report",
        )
    try:
        status = workload_status(cluster_api_client(cluster=work.cluster), work.applied_objects)
    except ClusterConnectError as error:
        _save(work, message=error.message, synced_at=timezone.now())
        return SyncOutcome(ok=False, message=error.message)
    _save(
        work,
        state=WorkState.AVAILABLE if status.complete else WorkState.APPLIED,
        desired_replicas=status.desired,
        available_replicas=status.available,
        message="; ".join(status.problems[:3]),
        synced_at=timezone.now(),
    )
    return SyncOutcome(ok=True, complete=status.complete, message="; ".join(status.problems[:3]))


def work_remove(work: ClusterWork) -> SyncOutcome:
    """Delete the application's objects from the cluster and forget the work. An unreachable
    cluster keeps the work as orphaned; the next reconcile tries again."""
    work = ClusterWork.objects.select_related("cluster").get(pk=work.pk)
    if work.cluster.mode == ClusterMode.PULL:
        work.delete()  # the agent's next fetch no longer lists the objects
        return SyncOutcome(ok=True, message="removed from the agent's work")
    try:
        api = cluster_api_client(cluster=work.cluster)
        removed = [ref_key(ref) for ref in work.applied_objects if ref["kind"] != "Namespace"]
        for ref in reversed(work.applied_objects):
            if ref["kind"] != "Namespace":
                delete_object(api, ref)
    except ClusterConnectError as error:
        _save(work, state=WorkState.ORPHANED, message=f"removal pending: {error.message}")
        return SyncOutcome(ok=False, message=error.message)
    work.delete()
    return SyncOutcome(ok=True, message=f"removed {len(removed)} objects", pruned=len(removed))


def agent_work(*, cluster: Cluster) -> dict[str, Any]:
    """What a pull-mode cluster's agent should hold: every application's rendered objects.
    Fetching marks each work delivered at its desired version."""
    objects: list[dict[str, Any]] = []
    works = list(
        ClusterWork.objects.filter(cluster=cluster)
        .exclude(state=WorkState.ORPHANED)
        .select_related("application__team", "cluster")
        .order_by("application__name")
    )
    wanted = Q()
    for work in works:
        wanted |= Q(application_id=work.application_id, number=work.desired_version)
    manifests = {
        (v.application_id, v.number): v.manifests
        for v in (ApplicationVersion.objects.filter(wanted) if works else [])
    }
    renders: list[tuple[ClusterWork, list[dict[str, Any]]]] = []
    for work in works:
        try:
            rendered = work_render(
                work,
                manifests=manifests.get((work.application_id, work.desired_version)),
                admit=False,
            )
        except RenderError as error:
            _save(work, state=WorkState.FAILED, message=str(error))
            continue
        renders.append((work, rendered))
    # The pre-apply checks once for the whole pull (a fixed number of queries), each
    # refusal then charged to the work holding the refused object.
    refusals = admission.run(cluster, [o for _, r in renders for o in r]) if renders else []
    for work, rendered in renders:
        refused = admission.concerning(refusals, rendered)
        if refused:
            why = REFUSED + admission.summary(refused)
            if (work.state, work.message) != (WorkState.FAILED, why):
                _save(work, state=WorkState.FAILED, message=why)
            continue
        objects.extend(rendered)
        if work.applied_version != work.desired_version or work.state != WorkState.DELIVERED:
            _save(
                work,
                applied_version=work.desired_version,
                state=WorkState.DELIVERED,
                applied_objects=[
                    {
                        "apiVersion": o["apiVersion"],
                        "kind": o["kind"],
                        "namespace": o["metadata"].get("namespace", ""),
                        "name": o["metadata"]["name"],
                    }
                    for o in rendered
                ],
                message="",
                synced_at=timezone.now(),
            )
    # Changes whenever anything to apply changes: an agent may skip applying an unchanged set.
    return {"cluster": cluster.name, "generation": rendered_hash(objects), "objects": objects}


def agent_work_report(*, cluster: Cluster, applications: dict[str, dict[str, Any]]) -> int:
    """What a pull cluster's agent found after applying its work, per application; only a
    report about the desired version counts. Returns how many works were updated."""
    updated = 0
    works = ClusterWork.objects.filter(cluster=cluster).select_related("application")
    for work in works:
        report = applications.get(work.application.name)
        if not isinstance(report, dict) or str(report.get("version", "")) != str(
            work.desired_version
        ):
            continue
        error = str(report.get("error") or "")[:500]
        if error:
            _save(work, state=WorkState.FAILED, message=error, synced_at=timezone.now())
        else:
            desired = int(report.get("desired") or 0)
            available = min(int(report.get("available") or 0), desired)
            _save(
                work,
                state=WorkState.AVAILABLE if report.get("complete") else WorkState.APPLIED,
                desired_replicas=max(desired, 0),
                available_replicas=max(available, 0),
                message=str(report.get("message") or "")[:500],
                synced_at=timezone.now(),
            )
        updated += 1
    return updated
