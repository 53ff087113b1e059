"""Thin Celery wrappers over cost services."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from core.celery import keelson_task
from costs.backfill import backfill, snapshots_prune
from costs.services import budgets_check, cost_compute
from operations.pipelines import pipeline_ran

BACKFILL_WINDOW = timedelta(hours=6)  # missed hours looked for at each computation


@keelson_task(queue="costs", idempotent=True, time_limit=900)
def cost_compute_task() -> int:
    """This hour's cost; then the hours missed in the last BACKFILL_WINDOW (workers were
    down), from their snapshots, marked estimated; snapshots past their retention go."""
    written = cost_compute()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    written += backfill(since=hour - BACKFILL_WINDOW, until=hour).rows
    snapshots_prune(now=hour)
    pipeline_ran("costs")
    return written


@keelson_task(queue="costs", idempotent=True, time_limit=300)
def budgets_check_task() -> int:
    return len(budgets_check())


@keelson_task(queue="costs", idempotent=True, time_limit=300)
def cost_compute_clusters_task(cluster_ids: list[int]) -> int:
    """This hour's cost of clusters seen for the first time (not at the next interval)."""
    return cost_compute(cluster_ids=cluster_ids)
