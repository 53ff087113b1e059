"""Backfill: hours the hourly computation missed (workers down), computed later.

Every computed hour keeps the inventory it was computed from (`CostSnapshot`). An hour a
cluster has no cost rows for, inside its life (registered before the hour ended), is
computed from the latest snapshot at or before that hour and priced at that hour's prices;
its rows are marked estimated, their provenance says `backfilled` and from which
snapshot. `recompute` also recomputes the hours that have rows, each from its own snapshot
(a correction of prices, say); rows of an hour without a snapshot of its own stay as they
are unless missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from audit.services import audit_record
from clusters.models import Cluster
from costs.models import CostAllocation, CostSnapshot
from costs.pricing import PriceBook
from costs.services import (
    allocation_lines,
    allocations_replace,
    cluster_cost_hour,
    namespace_labels,
)

ONE_HOUR = timedelta(hours=1)
Progress = Callable[[int, int, int], None]  # (hours done, hours in all, rows written)


@dataclass(frozen=True)
class BackfillResult:
    hours: int
    clusters_filled: int
    rows: int


def _hours(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        yield hour
        hour += ONE_HOUR


def backfill(
    *,
    since: datetime,
    until: datetime,
    recompute: bool = False,
    cluster_ids: list[int] | None = None,
    progress: Progress | None = None,
) -> BackfillResult:
    """Compute the missed hours in [since, until) (every hour with `recompute`)."""
    if since >= until:
        raise ValueError("since must be before until.")
    clusters = Cluster.objects.select_related("team").order_by("pk")
    if cluster_ids is not None:
        clusters = clusters.filter(pk__in=cluster_ids)
    hours = list(_hours(since, until))
    filled = written = 0
    for done, hour in enumerate(hours, start=1):
        alive = clusters.filter(created_at__lt=hour + ONE_HOUR)
        with_rows = CostAllocation.objects.filter(hour=hour, cluster__isnull=False)
        if recompute:
            targets = list(alive)
            have = set(with_rows.values_list("cluster_id", flat=True).distinct())
        else:  # only the clusters without rows are loaded: usually none
            targets, have = list(alive.exclude(pk__in=with_rows.values("cluster_id"))), set()
        snapshots = _latest_snapshots([c.pk for c in targets], hour)
        book = PriceBook(hour.date())
        lines: list[str] = []
        replaced: list[int] = []
        for cluster in targets:
            snapshot = snapshots.get(cluster.pk)
            if snapshot is None:
                continue  # nothing known of it before this hour
            own = snapshot.hour == hour
            if cluster.pk in have and not own:
                continue  # recompute only from the hour's own snapshot
            allocations, facts = cluster_cost_hour(cluster, snapshot.data, hour, book)
            if not own:
                facts = {**facts, "backfilled": True, "snapshot_hour": snapshot.hour.isoformat()}
            labels = namespace_labels(snapshot.data)
            lines += allocation_lines(cluster, hour, allocations, labels, facts)
            replaced.append(cluster.pk)
        if replaced:
            written += allocations_replace(cluster_ids=replaced, hour=hour, lines=lines)
            filled += len(replaced)
        if progress is not None:
            progress(done, len(hours), written)
    if filled:
        audit_record(
            actor=None,
            action="cost.backfill",
            detail={
                "since": since.isoformat(),
                "until": until.isoformat(),
                "recompute": recompute,
                "cluster_hours": filled,
            },
        )
    return BackfillResult(hours=len(hours), clusters_filled=filled, rows=written)


SNAPSHOT_DAYS = 35  # how far back a missed hour can be backfilled (a month and a margin)


def snapshots_prune(*, now: datetime) -> int:
    """Delete snapshots past SNAPSHOT_DAYS and those of deregistered clusters (whose
    hours are never backfilled); returns how many."""
    old = Q(hour__lt=now - timedelta(days=SNAPSHOT_DAYS)) | Q(cluster__isnull=True)
    deleted, _ = CostSnapshot.objects.filter(old).delete()
    return deleted


def _latest_snapshots(cluster_ids: list[int], hour: datetime) -> dict[int, CostSnapshot]:
    """Each cluster's latest snapshot at or before `hour` (one query)."""
    if not cluster_ids:
        return {}
    query = (
        CostSnapshot.objects.filter(Q(cluster_id__in=cluster_ids), hour__lte=hour)
        .order_by("cluster_id", "-hour")
        .distinct("cluster_id")
    )
    return {snapshot.cluster_id: snapshot for snapshot in query if snapshot.cluster_id}
