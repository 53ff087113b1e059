"""Celery wrappers of update runs (queue `default`)."""

from __future__ import annotations

from uuid import UUID

from core.celery import keelson_task
from updates.engine import run_check


# One check of an update run. Waits (changes under way, windows, soaks, approvals) are
# countdowns between checks (updates/engine.py), so the limit bounds one check only.
@keelson_task(queue="default", idempotent=True, time_limit=600)
def update_run_task(operation_id: str, tick: int | None = None) -> None:
    run_check(operation_id=UUID(operation_id), tick=tick)
