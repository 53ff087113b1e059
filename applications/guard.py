"""Never remove an application from every cluster it runs on without a user's say-so.

When nothing fits a placement (capacity used up, a label typo, every cluster tainted or
unreachable) the decision is empty, and carrying it out would delete the application
everywhere at once. Neither a rollout nor reconcile does that: the application keeps running
where it is and its placement is marked Unschedulable with the reason. Only an explicit,
confirmed action that names those clusters (`application_evict_everywhere_start` in
`applications.rollout`) empties it. Moving it to other clusters is not guarded: a rollout
makes the new clusters available before it removes the application from the old ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from applications.models import Application, ClusterWork, Placement, PlacementStatus, WorkState
from audit.services import audit_record

REASON_LIMIT = 1000


def running_clusters(application: Application) -> list[str]:
    """Where the application runs, by name: its works, except those already left (orphaned,
    removal pending)."""
    return sorted(
        ClusterWork.objects.filter(application=application)
        .exclude(state=WorkState.ORPHANED)
        .values_list("cluster__name", flat=True)
    )


def removes_everywhere(chosen: Sequence[Any], running: list[str]) -> bool:
    """Would carrying out a decision that chose `chosen` leave the application running
    nowhere, although it runs on `running` now?"""
    return bool(running) and not chosen


def unschedulable_reason(decision: dict[str, Any]) -> str:
    """Why nothing was chosen, in one sentence, from a decision's JSON (stored, or a
    simulation's `summarized()`, whose `summary` counts every exclusion)."""
    excluded = decision.get("excluded") or []
    counts = (decision.get("summary") or {}).get("excluded")
    if counts is None:
        counts = Counter(entry["predicate"] for entry in excluded)
    total = sum(counts.values())
    if total:
        by = ", ".join(f"{count} by {predicate}" for predicate, count in sorted(counts.items()))
        text = f"No cluster fits the placement: {total} excluded ({by})"
        if excluded:
            text += f"; e.g. {excluded[0]['cluster']}: {excluded[0]['reason']}"
    elif decision.get("not_selected"):
        text = "No cluster was selected by the placement"
    else:
        text = "No cluster fits the placement: the team has no clusters"
    warnings = decision.get("warnings") or []
    if warnings:
        text += f"; {warnings[0]}"
    return text[:REASON_LIMIT]


@transaction.atomic
def placement_mark_unschedulable(
    *,
    application: Application,
    reason: str,
    clusters: list[str],
    actor: AbstractBaseUser | None = None,
) -> bool:
    """Mark the placement Unschedulable (kept running on `clusters`); audited when the status
    or its reason changes. Returns whether anything changed."""
    placement = Placement.objects.select_for_update().get(application=application)
    reason = f"{reason}. Still running on {', '.join(clusters)}."[:REASON_LIMIT]
    if placement.status == PlacementStatus.UNSCHEDULABLE and placement.status_reason == reason:
        return False
    if placement.status != PlacementStatus.UNSCHEDULABLE:
        placement.status_since = timezone.now()
    placement.status = PlacementStatus.UNSCHEDULABLE
    placement.status_reason = reason
    placement.save(update_fields=["status", "status_reason", "status_since", "updated_at"])
    audit_record(
        actor=actor,
        action="placement.unschedulable",
        target=application,
        team=application.team,
        detail={"reason": reason, "kept_on": clusters},
    )
    return True


def placement_mark_scheduled(
    *, application: Application, actor: AbstractBaseUser | None = None
) -> bool:
    """Clear an Unschedulable mark (something fits again, or the application was emptied on
    purpose); audited when it was set. Cheap when there is nothing to clear."""
    cleared = Placement.objects.filter(
        application=application, status=PlacementStatus.UNSCHEDULABLE
    ).update(
        status=PlacementStatus.SCHEDULED,
        status_reason="",
        status_since=timezone.now(),
        updated_at=timezone.now(),
    )
    if cleared:
        audit_record(
            actor=actor, action="placement.scheduled", target=application, team=application.team
        )
    return bool(cleared)
