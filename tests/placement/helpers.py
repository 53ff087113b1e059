"""Driving a rollout in the test process: each check run here when its countdown ends, as
the worker would run it (the Celery path itself is tested with real workers)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from applications.models import RolloutProgress
from applications.rollout import rollout_run
from operations.models import Operation


def drive_rollout(operation: Operation, *, timeout: float = 180) -> Operation:
    """Run the rollout's checks until it ends; the ended operation."""
    deadline = time.monotonic() + timeout
    if not RolloutProgress.objects.filter(pk=operation.pk).exists():
        rollout_run(operation_id=operation.pk)  # the first check, as the dispatched message
    while True:
        operation.refresh_from_db()
        if operation.is_final:
            return operation
        progress = RolloutProgress.objects.get(pk=operation.pk)
        wait = max((progress.check_at - timezone.now()).total_seconds(), 0.0)
        if time.monotonic() + wait > deadline:
            pytest.fail(f"rollout {operation.pk} still {operation.state} after {timeout:.0f}s")
        time.sleep(wait)
        rollout_run(operation_id=operation.pk, tick=progress.tick)
