"""What a run will do (or is doing): stages → groups → clusters with what changes on each,
when each cluster's window next opens, the expected duration (updates/estimate.py) and the
change kind's impact."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from clusters.eol import eol_for
from updates.changes import change_for
from updates.changes.base import Change
from updates.choices import ClusterState
from updates.estimate import GroupLoad, StageLoad, expected
from updates.models import UpdateRun, UpdateRunCluster, UpdateRunStage
from updates.planning import cluster_windows
from updates.strategy import concurrency_limit
from updates.windows import Window, next_opening

TO_CHANGE = (ClusterState.PENDING, ClusterState.WAITING_WINDOW)


def _cluster(row: UpdateRunCluster, windows: list[Window], now: datetime) -> dict[str, Any]:
    cluster = row.cluster
    version = cluster.kubernetes_version if cluster else ""
    eol = eol_for(cluster.provider, version) if cluster else None
    opening = next_opening(windows, now) if windows else None
    return {
        "name": row.cluster_name,
        "state": row.state,
        "from": row.from_value,
        "to": row.to_value,
        "skip_reason": row.skip_reason,
        "message": row.message,
        "kubernetes_version": version,
        "end_of_life": eol.isoformat() if eol else None,
        "past_end_of_life": bool(eol and eol < now.date()),
        "windows": [w.name for w in windows],
        "next_window": opening.at.isoformat() if opening else None,
        "next_window_text": opening.describe() if opening else "",
    }


def _estimate_of(row: UpdateRunCluster, estimates: dict[str, int]) -> int:
    return estimates.get(row.cluster_name, 60)


def run_preview(run: UpdateRun, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    problems: list[str] = []
    change: Change | None = None
    try:
        change = change_for(run.change_kind, team=run.team, params=run.change_params)
    except ValidationError as error:  # e.g. its policy was deleted since: show the rest
        problems = error.messages
    stages = list(UpdateRunStage.objects.filter(run=run).order_by("index"))
    rows = list(
        UpdateRunCluster.objects.filter(run=run)
        .select_related("cluster")
        .order_by("stage_index", "position")
    )
    windows = cluster_windows(run.team_id, [r.cluster_id for r in rows if r.cluster_id])
    live = [r.cluster for r in rows if r.cluster is not None]
    plans = change.plan(live) if change is not None and live else []
    estimates = {p.cluster_name: p.estimate_seconds for p in plans}
    shown: list[dict[str, Any]] = []
    loads: list[StageLoad] = []
    for stage in stages:
        spec = run.stages[stage.index]
        groups_shown, group_loads = [], []
        for group in spec["groups"]:
            members = [r for r in rows if r.stage_index == stage.index and r.group == group["name"]]
            todo = [r for r in members if r.state in TO_CHANGE]
            limit = concurrency_limit(spec.get("max_concurrency", 1), int(group.get("planned", 0)))
            group_loads.append(
                GroupLoad(
                    clusters=len(todo),
                    limit=limit,
                    estimate_seconds=max((_estimate_of(r, estimates) for r in todo), default=0),
                    windows=[windows.get(r.cluster_id or 0, []) for r in todo],
                )
            )
            groups_shown.append(
                {
                    "name": group["name"],
                    "cluster_set": group.get("cluster_set", ""),
                    "selector": group.get("selector", ""),
                    "max_concurrency": spec.get("max_concurrency", 1),
                    "limit": limit,
                    "clusters": [
                        _cluster(r, windows.get(r.cluster_id or 0, []), now) for r in members
                    ],
                }
            )
        loads.append(StageLoad(groups=group_loads, soak_seconds=stage.soak_seconds))
        shown.append(
            {
                "index": stage.index,
                "name": stage.name,
                "state": stage.state,
                "approval": stage.approval_required,
                "approved_by": stage.approved_by.get_username() if stage.approved_by else "",
                "soak_seconds": stage.soak_seconds,
                "groups": groups_shown,
            }
        )
    timeline = expected(loads, now)
    for entry, estimate in zip(shown, timeline, strict=True):
        entry["expected_start"] = estimate.starts.isoformat()
        entry["expected_seconds"] = estimate.seconds
        entry["window_wait_seconds"] = estimate.wait_seconds
    total = sum(e.seconds for e in timeline)
    return {
        "id": str(run.pk),
        "name": run.name,
        "state": run.state,
        "change": {
            "kind": run.change_kind,
            "description": change.describe() if change is not None else "",
            "reversible": bool(change.reversible) if change is not None else None,
            "params": run.change_params,
            "problems": problems,
        },
        "scope": run.scope,
        "stages": shown,
        "clusters": len(rows),
        "to_change": sum(1 for r in rows if r.state in TO_CHANGE),
        "skipped": sum(1 for r in rows if r.state == ClusterState.SKIPPED),
        "expected_seconds": total,
        "expected_finish": (now + timedelta(seconds=total)).isoformat(),
        "impact": change.impact(live) if change is not None and live else {},
    }
