"""Thin Celery wrappers: each loads by id and calls one service."""

from __future__ import annotations

from core.celery import keelson_task
from notifications.delivery import deliveries_purge, deliveries_requeue_due, delivery_attempt


@keelson_task(queue="notifications", idempotent=True, time_limit=60, max_retries=0)
def delivery_send_task(delivery_id: int) -> str:
    return delivery_attempt(delivery_id=delivery_id)


@keelson_task(queue="notifications", idempotent=True, time_limit=60, max_retries=0)
def deliveries_due_task() -> int:
    return deliveries_requeue_due()


@keelson_task(queue="notifications", idempotent=True, time_limit=300, max_retries=0)
def deliveries_purge_task() -> int:
    return deliveries_purge()
