"""Thin Celery wrappers over the cluster services."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from clusters.services.collection import clusters_collect, clusters_collect_fanout
from clusters.services.history import health_retention, health_rollup
from clusters.services.lifecycle import cluster_deregister_run
from clusters.services.pool_update import cluster_pool_update_run
from clusters.services.provisioning import cluster_lifecycle_run
from core.celery import keelson_task
from operations.pipelines import pipeline_ran


@keelson_task(queue="clusters", idempotent=True, time_limit=120, soft_time_limit=100)
def clusters_collect_shard_task(cluster_ids: list[int], scheduled: bool = True) -> dict[str, int]:
    """`scheduled=False` for a user's "collect now": the full inventory, even if not due."""
    return clusters_collect(cluster_ids=cluster_ids, scheduled=scheduled)


@keelson_task(queue="clusters", time_limit=60)
def clusters_collect_fanout_task() -> int:
    queued = clusters_collect_fanout()
    pipeline_ran("collection")
    return queued


@keelson_task(queue="clusters", idempotent=True, time_limit=600)
def clusters_health_rollup_task() -> dict[str, Any]:
    return {"rollup": health_rollup(), "retention": health_retention()}


@keelson_task(queue="provisioning", idempotent=True, time_limit=1800)
def cluster_deregister_task(operation_id: str) -> None:
    cluster_deregister_run(operation_id=UUID(operation_id))


@keelson_task(queue="provisioning", idempotent=True, bind=True, max_retries=5, time_limit=3600)
def cluster_lifecycle_task(self: Any, operation_id: str) -> None:
    """Provision, scale, upgrade or delete a cluster (the Operation says which)."""
    cluster_lifecycle_run(
        operation_id=UUID(operation_id), final_attempt=self.request.retries >= self.max_retries
    )


# One check of a node pool's rolling replacement; waits between checks are countdowns
# (clusters.services.pool_update), so the limit bounds one check, never a drain.
@keelson_task(queue="provisioning", idempotent=True, time_limit=300, soft_time_limit=240)
def cluster_pool_update_task(operation_id: str, tick: int | None = None) -> None:
    cluster_pool_update_run(operation_id=UUID(operation_id), tick=tick)
