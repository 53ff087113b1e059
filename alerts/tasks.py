"""Thin Celery wrappers over the alerts services (queue "alerts")."""

from __future__ import annotations

from alerts.services.lifecycle import groups_flush
from alerts.services.passes import alerts_on_clusters, alerts_on_operation, alerts_periodic
from alerts.services.retention import alerts_purge
from core.celery import keelson_task


@keelson_task(queue="alerts", idempotent=True, time_limit=120)
def alerts_evaluate_task() -> dict[str, int]:
    """The periodic pass (beat)."""
    return alerts_periodic()


@keelson_task(queue="alerts", idempotent=True, time_limit=60)
def alerts_clusters_changed_task(cluster_ids: list[int]) -> int:
    """Sent by collection (by name) when clusters change status."""
    return alerts_on_clusters(cluster_ids=cluster_ids)


@keelson_task(queue="alerts", idempotent=True, time_limit=60)
def alerts_operation_ended_task(team_id: int | None) -> int:
    """Sent by operations (by name) when an operation failed or rolled back."""
    return alerts_on_operation(team_id=team_id)


@keelson_task(queue="alerts", idempotent=True, time_limit=60)
def alerts_flush_task() -> int:
    """Notify the groups whose wait ended."""
    return groups_flush()


@keelson_task(queue="alerts", idempotent=True, time_limit=300)
def alerts_purge_task() -> dict[str, int]:
    return alerts_purge()
