"""Celery wrappers of the placement services (queue `placement`)."""

from __future__ import annotations

from uuid import UUID

from applications.reconcile import placement_reconcile_batch, placement_reconcile_fanout
from applications.rollout import application_delete_run, rollout_run
from core.celery import keelson_task


# One check of a rollout: applying a step, or one look at its health. Waits between checks
# are countdowns (applications.rollout), so the limit bounds applying, never a soak.
@keelson_task(queue="placement", idempotent=True, time_limit=1800)
def application_rollout_task(operation_id: str, tick: int | None = None) -> None:
    rollout_run(operation_id=UUID(operation_id), tick=tick)


@keelson_task(queue="placement", idempotent=True, time_limit=900)
def placement_reconcile_batch_task(application_ids: list[int]) -> dict[str, int]:
    return placement_reconcile_batch(application_ids=application_ids)


@keelson_task(queue="placement", time_limit=60)
def placement_reconcile_fanout_task() -> int:
    return placement_reconcile_fanout()


@keelson_task(queue="placement", idempotent=True, time_limit=3600)
def application_delete_task(operation_id: str) -> None:
    application_delete_run(operation_id=UUID(operation_id))
