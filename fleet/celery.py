"""The Celery application and Keelson's task conventions (STYLE.md).

Tasks are thin: load by id, call one service. They are declared with `keelson_task`,
which names the queue (one per concern), and opts in to late acknowledgement only when
the task says it is idempotent: a task acked late is redelivered when its worker dies,
so it must be safe to run twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")

# One queue per concern (DESIGN.md "Processes"); a worker may serve a subset with -Q.
QUEUES = ("default", "clusters", "provisioning", "placement", "policies", "reports", "costs")

app = Celery("keelson", include=["fleet.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.autodiscover_tasks()


class TransientError(Exception):
    """A failure worth retrying (network blip, API server restarting, lock held)."""


class PermanentError(Exception):
    """A failure retrying will not fix (bad input, missing object, permission denied)."""


F = TypeVar("F", bound=Callable[..., Any])


def keelson_task(
    *,
    queue: str,
    idempotent: bool = False,
    max_retries: int = 5,
    time_limit: int | None = None,
    soft_time_limit: int | None = None,
) -> Callable[[F], Any]:
    """Declare a Celery task routed to `queue`.

    `TransientError` is retried with exponential backoff and jitter (up to `max_retries`);
    anything else fails the task at once. `idempotent=True` turns on `acks_late`.
    """

    def decorator(func: F) -> Any:
        options: dict[str, Any] = {
            "name": f"{func.__module__}.{func.__name__}",
            "queue": queue,
            "acks_late": idempotent,
            "reject_on_worker_lost": idempotent,
            "autoretry_for": (TransientError,),
            "retry_backoff": True,
            "retry_backoff_max": 300,
            "retry_jitter": True,
            "max_retries": max_retries,
        }
        if time_limit is not None:
            options["time_limit"] = time_limit
        if soft_time_limit is not None:
            options["soft_time_limit"] = soft_time_limit
        return app.task(**options)(func)

    return decorator
