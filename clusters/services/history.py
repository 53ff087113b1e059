"""Health history: raw samples rolled up hourly and daily in SQL, retention, chart series."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from clusters.choices import RollupPeriod
from clusters.models import Cluster, HealthRollup, HealthSample
from core.db.copy import copy_lines

_ROLLUP_SQL = """
INSERT INTO clusters_healthrollup (
    cluster_id, cluster_name, team_id, period, start, samples, ready_samples,
    degraded_samples, unreachable_samples, api_latency_avg_ms, api_latency_max_ms,
    nodes_ready_min, nodes_total_max, pods_running_avg, pods_failed_max,
    cpu_requested_avg_millis, memory_requested_avg_bytes
)
SELECT s.cluster_id, c.name, c.team_id, %(period)s,
    date_trunc(%(period)s, s.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
    count(*),
    count(*) FILTER (WHERE s.status = 'ready'),
    count(*) FILTER (WHERE s.status = 'degraded'),
    count(*) FILTER (WHERE s.status = 'unreachable'),
    avg(s.api_latency_ms), max(s.api_latency_ms), min(s.nodes_ready), max(s.nodes_total),
    avg(s.pods_running), max(s.pods_failed), avg(s.cpu_requested_millis),
    avg(s.memory_requested_bytes)
FROM clusters_healthsample AS s JOIN clusters_cluster AS c ON c.id = s.cluster_id
WHERE s.at >= %(since)s AND s.at < %(until)s
GROUP BY s.cluster_id, c.name, c.team_id, 5
ON CONFLICT (cluster_id, period, start) DO UPDATE SET
    cluster_name = EXCLUDED.cluster_name,
    team_id = EXCLUDED.team_id,
    samples = EXCLUDED.samples,
    ready_samples = EXCLUDED.ready_samples,
    degraded_samples = EXCLUDED.degraded_samples,
    unreachable_samples = EXCLUDED.unreachable_samples,
    api_latency_avg_ms = EXCLUDED.api_latency_avg_ms,
    api_latency_max_ms = EXCLUDED.api_latency_max_ms,
    nodes_ready_min = EXCLUDED.nodes_ready_min,
    nodes_total_max = EXCLUDED.nodes_total_max,
    pods_running_avg = EXCLUDED.pods_running_avg,
    pods_failed_max = EXCLUDED.pods_failed_max,
    cpu_requested_avg_millis = EXCLUDED.cpu_requested_avg_millis,
    memory_requested_avg_bytes = EXCLUDED.memory_requested_avg_bytes
"""


SAMPLE_COLUMNS = (
    "cluster_id",
    "at",
    "status",
    "api_latency_ms",
    "nodes_total",
    "nodes_ready",
    "pods_running",
    "pods_pending",
    "pods_failed",
    "cpu_requested_millis",
    "memory_requested_bytes",
    "warning_events",
)


SampleRow = tuple[Any, ...]  # values in SAMPLE_COLUMNS order


def samples_copy(rows: Iterable[SampleRow]) -> int:
    """Store health samples, given as plain tuples in `SAMPLE_COLUMNS` order, with
    PostgreSQL COPY (several times faster than a multi-row INSERT, and no model instance
    per sample). Every value is a number, a timestamp, a status code or None, so the text
    format needs no escaping."""
    lines = []
    for row in rows:
        if row[0] is None or row[1] is None:
            raise ValueError("a health sample needs its cluster and time")
        lines.append(
            "\t".join(
                [
                    "\\N" if v is None else (v.isoformat() if type(v) is datetime else str(v))
                    for v in row
                ]
            )
        )
    return copy_lines(HealthSample, SAMPLE_COLUMNS, lines)


def samples_insert(samples: list[HealthSample]) -> int:
    """Store health sample model instances (see `samples_copy`)."""
    return samples_copy(map(operator.attrgetter(*SAMPLE_COLUMNS), samples))


def _truncate(moment: datetime, period: RollupPeriod) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if period == RollupPeriod.DAY else moment


@transaction.atomic
def health_rollup(*, now: datetime | None = None) -> dict[str, int]:
    """Recompute the current and previous hour and day buckets from raw samples (idempotent:
    a bucket is overwritten, never added to)."""
    now = now or timezone.now()
    counts = {}
    spans = {RollupPeriod.HOUR: timedelta(hours=1), RollupPeriod.DAY: timedelta(days=1)}
    for period, span in spans.items():
        since = _truncate(now, period) - span
        with connection.cursor() as cursor:
            cursor.execute(_ROLLUP_SQL, {"period": period.value, "since": since, "until": now})
            counts[period.value] = cursor.rowcount
    return counts


def health_retention(*, now: datetime | None = None) -> dict[str, int]:
    """Delete history past its retention (settings KEELSON_HEALTH_*_DAYS)."""
    now = now or timezone.now()
    raw, _ = HealthSample.objects.filter(
        at__lt=now - timedelta(days=settings.KEELSON_HEALTH_RAW_DAYS)
    ).delete()
    hourly, _ = HealthRollup.objects.filter(
        period=RollupPeriod.HOUR,
        start__lt=now - timedelta(days=settings.KEELSON_HEALTH_HOURLY_DAYS),
    ).delete()
    daily, _ = HealthRollup.objects.filter(
        period=RollupPeriod.DAY,
        start__lt=now - timedelta(days=settings.KEELSON_HEALTH_DAILY_DAYS),
    ).delete()
    return {"raw": raw, "hour": hourly, "day": daily}


def health_series(
    *, cluster: Cluster, since: datetime, until: datetime, resolution: str = "auto"
) -> dict[str, Any]:
    """Points for charts. `auto` picks raw up to 2 days, hourly up to 90 days, else daily."""
    span = until - since
    if resolution == "auto":
        resolution = (
            "raw"
            if span <= timedelta(days=2)
            else ("hour" if span <= timedelta(days=90) else "day")
        )
    if resolution == "raw":
        rows = HealthSample.objects.filter(cluster=cluster, at__gte=since, at__lt=until).order_by(
            "at"
        )[:5000]
        points = [
            {
                "t": row.at.isoformat(),
                "status": row.status,
                "api_latency_ms": row.api_latency_ms,
                "nodes_ready": row.nodes_ready,
                "nodes_total": row.nodes_total,
                "pods_running": row.pods_running,
                "pods_failed": row.pods_failed,
                "cpu_requested_millis": row.cpu_requested_millis,
                "memory_requested_bytes": row.memory_requested_bytes,
            }
            for row in rows
        ]
    elif resolution in ("hour", "day"):
        rollups = HealthRollup.objects.filter(
            cluster=cluster, period=resolution, start__gte=since, start__lt=until
        ).order_by("start")[:5000]
        points = [
            {
                "t": row.start.isoformat(),
                "samples": row.samples,
                "ready_ratio": round(row.ready_samples / row.samples, 4) if row.samples else None,
                "api_latency_ms": row.api_latency_avg_ms,
                "api_latency_max_ms": row.api_latency_max_ms,
                "nodes_ready": row.nodes_ready_min,
                "nodes_total": row.nodes_total_max,
                "pods_running": row.pods_running_avg,
                "pods_failed": row.pods_failed_max,
                "cpu_requested_millis": row.cpu_requested_avg_millis,
                "memory_requested_bytes": row.memory_requested_avg_bytes,
            }
            for row in rollups
        ]
    else:
        raise ValueError("resolution must be auto, raw, hour or day")
    return {
        "cluster": cluster.name,
        "resolution": resolution,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "points": points,
    }
