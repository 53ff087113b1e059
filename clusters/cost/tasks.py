"""Thin Celery wrappers over cost services."""

from __future__ import annotations

from clusters.cost.services import budgets_check, cost_compute
from fleet.celery import keelson_task


@keelson_task(queue="costs", idempotent=True, time_limit=900)
def cost_compute_task() -> int:
    return cost_compute()


@keelson_task(queue="costs", idempotent=True, time_limit=300)
def budgets_check_task() -> int:
    return len(budgets_check())


@keelson_task(queue="costs", idempotent=True, time_limit=300)
def cost_compute_clusters_task(cluster_ids: list[int]) -> int:
    """This hour's cost of clusters seen for the first time (not at the next interval)."""
    return cost_compute(cluster_ids=cluster_ids)
