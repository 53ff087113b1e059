"""Liveness and readiness: is the process up; are PostgreSQL, the broker and Redis reachable."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from kombu import Connection

CHECK_TIMEOUT = 2.0


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=0, timeout=int(CHECK_TIMEOUT))


def _check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "redis": _check_redis,
}


def readiness() -> tuple[bool, dict[str, dict[str, object]]]:
    """Run every check. Errors are reported by class only: messages may carry URLs and
    credentials."""
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:
            results[name] = {"ok": False, "error": f"unreachable ({type(exc).__name__})"}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    return all(result["ok"] for result in results.values()), results
