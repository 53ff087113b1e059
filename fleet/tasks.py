"""Fleet-wide housekeeping tasks."""

from __future__ import annotations

from core.celery import keelson_task
from operations.dispatch import operations_redispatch


@keelson_task(queue="default", idempotent=True)
def fleet_ping_task(payload: str) -> dict[str, str]:
    """Echo `payload` with the worker's host name: proves a broker round trip."""
    import socket

    return {"payload": payload, "worker": socket.gethostname()}


@keelson_task(queue="default", time_limit=120)
def operations_redispatch_task() -> int:
    """Send again the operations nobody works on (see operations.dispatch)."""
    return operations_redispatch()
