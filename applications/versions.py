"""Versions cluster by cluster, for update runs (`updates.changes.application_version`):
move one cluster's work to a version through the propagation path a rollout uses, and
record the application's current version once every cluster has it.

The application's current version is the one its last placement decision was made for
(`PlacementDecision.application_version`): reconcile re-places to it and a reschedule rolls
it out. Recording a version writes a new decision that keeps the last one's clusters, so
nothing is re-placed and reconcile has no reason to move a cluster.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from applications.models import (
    Application,
    ClusterWork,
    PlacementDecision,
    WorkState,
)
from applications.propagation import SyncOutcome, work_sync, work_target
from applications.rollout.start import rollout_in_progress
from audit.services import audit_record
from clusters.models import Cluster


def _require_version(application: Application, version: int) -> None:
    if not application.versions.filter(number=version).exists():
        raise ValidationError({"version": f"{application.name} has no version {version}."})


def application_cluster_version_set(
    *, actor: AbstractBaseUser | None, application: Application, cluster: Cluster, version: int
) -> tuple[ClusterWork, SyncOutcome]:
    """Point `cluster`'s work at `version` and apply it now (push), or leave it for the
    agent's next fetch (pull). The replicas it was given stay; the version it ran is kept
    as the work's `previous_version`. Refused while a rollout of the application runs."""
    with transaction.atomic():
        locked = (
            Application.objects.select_for_update().select_related("team").get(pk=application.pk)
        )
        if (running := rollout_in_progress(locked)) is not None:
            raise ValidationError(
                f"A rollout of {locked.name} is in progress (operation {running.pk})."
            )
        _require_version(locked, version)
        work = (
            ClusterWork.objects.filter(application=locked, cluster=cluster)
            .exclude(state=WorkState.ORPHANED)
            .first()
        )
        if work is None:
            raise ValidationError(f"{locked.name} is not placed on {cluster.name}.")
        before = work.applied_version if work.applied_version is not None else work.desired_version
        work = work_target(
            application=locked, cluster=cluster, version=version, replicas=work.replicas
        )
        audit_record(
            actor=actor,
            action="application.cluster_version",
            target=locked,
            team=locked.team,
            detail={"cluster": cluster.name, "from": before, "to": version},
        )
    # After the commit: applying calls the cluster, which must not hold the row lock.
    return work, work_sync(work)


@transaction.atomic
def application_current_version_set(
    *, actor: AbstractBaseUser | None, application: Application, version: int
) -> PlacementDecision:
    """Record `version` as the application's current version (see the module's docstring);
    the last decision when it already is."""
    locked = Application.objects.select_for_update().select_related("team").get(pk=application.pk)
    _require_version(locked, version)
    last = locked.decisions.first()
    if last is None:
        raise ValidationError(f"{locked.name} was never rolled out: it has no decision yet.")
    if last.application_version == version:
        return last
    stored = PlacementDecision.objects.create(
        application=locked,
        version=last.version + 1,
        application_version=version,
        decision=last.decision,
    )
    audit_record(
        actor=actor,
        action="application.current_version",
        target=locked,
        team=locked.team,
        detail={"from": last.application_version, "to": version, "decision": stored.version},
    )
    return stored
