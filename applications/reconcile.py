"""Keeping deployed applications where their placement says, without anyone asking:
re-place when a chosen cluster has been unreachable past the toleration, its labels no
longer match, or a new cluster matches (each such change is a rollout of the deployed
version); otherwise re-apply the deployed version to correct drift and refresh status,
and retry removals from clusters that were unreachable when they left.

When nothing fits any more (`applications.guard`), the application is not rescheduled
away from every cluster: it keeps running (and is kept in shape) where it is, marked
Unschedulable, until something fits again or a user confirms its removal."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from applications.guard import (
    placement_mark_scheduled,
    placement_mark_unschedulable,
    removes_everywhere,
    running_clusters,
    unschedulable_reason,
)
from applications.holds import application_hold
from applications.models import Application, ClusterWork, WorkState
from applications.propagation import work_remove, work_sync
from applications.rollout import rollout_in_progress, rollout_start
from applications.services import placement_simulate

logger = logging.getLogger(__name__)

RECONCILE_BATCH = 50


def _assignment(chosen: list[dict[str, Any]]) -> dict[str, int]:
    return {c["cluster"]: int(c["replicas"]) for c in chosen if not c.get("tolerated")}


def placement_reconcile(*, application: Application) -> str:
    """One pass for one application; returns what it did: idle, busy (a rollout runs, or
    an update run holds it), rescheduled, synced or unschedulable (nothing fits; kept and
    synced where it runs).
    Each cluster's work is re-applied (drift) at most every KEELSON_PLACEMENT_DRIFT_INTERVAL,
    which bounds the calls to member clusters whatever the reconcile interval."""
    application = Application.objects.select_related("placement", "team").get(pk=application.pk)
    # Only what was chosen: a decision over 10,000 clusters stores every exclusion too.
    last = (
        application.decisions.annotate(chosen=KeyTransform("chosen", "decision"))
        .values_list("chosen", "application_version")
        .first()
    )
    if last is None or not application.works.exists():
        return "idle"  # never rolled out: placement waits for a first rollout
    if rollout_in_progress(application) is not None:
        return "busy"
    if application_hold(application) is not None:
        return "busy"  # an update run sets versions cluster by cluster (applications.holds)
    now = placement_simulate(application=application)
    last_chosen, last_version = last
    where = running_clusters(application)
    if removes_everywhere(now.chosen, where):
        why = unschedulable_reason(now.summarized(1))
        if placement_mark_unschedulable(application=application, reason=why, clusters=where):
            logger.warning("application %s is unschedulable: %s", application.name, why)
        _sync_due(application, kept=set())
        return "unschedulable"
    placement_mark_scheduled(application=application)
    before = {c["cluster"] for c in last_chosen}
    after = set(_assignment(now.chosen))
    kept = {c["cluster"] for c in now.chosen if c.get("tolerated")}
    # Only a change of clusters re-places: replica shares divided by free capacity move
    # with every collection, and chasing them would roll out all the time.
    if after | kept != before:
        left = sorted(before - after - kept)
        joined = sorted(after - before)
        reason = "reschedule" + (f"; left: {', '.join(left)}" if left else "")
        reason += f"; joined: {', '.join(joined)}" if joined else ""
        try:
            rollout_start(
                application=application,
                actor=None,
                version=last_version,
                reason=reason,
            )
        except ValidationError as error:
            logger.warning("could not reschedule %s: %s", application.name, error.messages[0])
            return "busy"
        logger.info("application %s: %s", application.name, reason)
        return "rescheduled"
    _sync_due(application, kept=kept)
    return "synced"


def _sync_due(application: Application, *, kept: set[str]) -> None:
    """Re-apply each work whose drift check is due (not where an unreachable cluster is
    tolerated), and retry pending removals."""
    due = timezone.now() - timedelta(seconds=settings.KEELSON_PLACEMENT_DRIFT_INTERVAL)
    for work in ClusterWork.objects.filter(application=application).select_related("cluster"):
        if work.state == WorkState.ORPHANED:
            work_remove(work)
        elif (
            work.applied_version is not None
            and work.cluster.name not in kept
            and (work.synced_at is None or work.synced_at <= due)
        ):
            work_sync(work)


def placement_reconcile_batch(*, application_ids: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for application in Application.objects.filter(pk__in=application_ids).select_related(
        "placement", "team"
    ):
        try:
            outcome = placement_reconcile(application=application)
        except Exception:
            logger.exception("reconcile of application %s failed", application.name)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def placement_reconcile_fanout() -> int:
    """One task per batch of deployed applications; returns how many batches were sent."""
    from applications.tasks import placement_reconcile_batch_task

    ids = list(
        Application.objects.filter(works__isnull=False)
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    batches = [ids[i : i + RECONCILE_BATCH] for i in range(0, len(ids), RECONCILE_BATCH)]
    for batch in batches:
        placement_reconcile_batch_task.delay(batch)
    return len(batches)
