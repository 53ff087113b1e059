"""The Celery application and Keelson's task conventions (STYLE.md).

Tasks are thin: load by id, call one service. They are declared with `keelson_task`,
which names the queue (one per concern), and opts in to late acknowledgement only when
the task says it is idempotent: a task acked late is redelivered when its worker dies,
so it must be safe to run twice.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery
from kombu import Exchange, Queue

from core.limits import raise_open_files_limit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
raise_open_files_limit()  # a worker holds a connection per member cluster (core/limits.py)

# One queue per concern (DESIGN.md "Processes"); a worker may serve a subset with -Q.
QUEUES = (
    "default",
    "clusters",
    "provisioning",
    "placement",
    "policies",
    "reports",
    "costs",
    "notifications",
    "alerts",
)

app = Celery("keelson", include=["fleet.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
# One direct exchange; each queue is bound by its own name, so a task sent with
# queue="clusters" reaches only the clusters queue.
EXCHANGE = Exchange("keelson", type="direct")
app.conf.task_queues = [Queue(name, EXCHANGE, routing_key=name) for name in QUEUES]
app.conf.update(task_default_exchange=EXCHANGE.name, task_default_routing_key="default")

# Queue of each task, filled by `keelson_task`; a function router is consulted at every send.
_TASK_QUEUES: dict[str, str] = {}


def _route(name: str, *args: Any, **kwargs: Any) -> dict[str, str] | None:
    queue = _TASK_QUEUES.get(name)
    return {"queue": queue} if queue else None


app.conf.task_routes = (_route,)
app.autodiscover_tasks()


class TransientError(Exception):
    """A failure worth retrying (network blip, API server restarting, lock held)."""


class PermanentError(Exception):
    """A failure retrying will not fix (bad input, missing object, permission denied)."""


F = TypeVar("F", bound=Callable[..., Any])

# A task's name is its module path. Task modules that moved to the layer layout keep
# answering to their former names for one release, so an upgrade with a non-empty queue
# loses no message.
_FORMER_MODULES = {
    "applications.tasks": "fleet.placement.tasks",
    "costs.tasks": "clusters.cost.tasks",
}


def keelson_task(
    *,
    queue: str,
    idempotent: bool = False,
    max_retries: int = 5,
    time_limit: int | None = None,
    soft_time_limit: int | None = None,
    bind: bool = False,
) -> Callable[[F], Any]:
    """Declare a Celery task routed to `queue`.

    `TransientError` is retried with exponential backoff and jitter (up to `max_retries`);
    anything else fails the task at once. `idempotent=True` turns on `acks_late`.
    """

    def decorator(func: F) -> Any:
        name = f"{func.__module__}.{func.__name__}"
        _TASK_QUEUES[name] = queue
        options: dict[str, Any] = {
            "name": name,
            "acks_late": idempotent,
            "reject_on_worker_lost": idempotent,
            "autoretry_for": (TransientError,),
            "retry_backoff": True,
            "retry_backoff_max": 300,
            "retry_jitter": True,
            "max_retries": max_retries,
            "bind": bind,
        }
        if time_limit is not None:
            options["time_limit"] = time_limit
            # The global soft limit may exceed a task's hard one, which Celery refuses at
            # send time: derive a soft limit that leaves the task time to clean up.
            options["soft_time_limit"] = soft_time_limit or max(
                1, time_limit - max(5, time_limit // 10)
            )
        elif soft_time_limit is not None:
            options["soft_time_limit"] = soft_time_limit
        task = app.task(**options)(func)
        former = _FORMER_MODULES.get(func.__module__)
        if former:  # messages queued before the upgrade still find their task
            legacy = f"{former}.{func.__name__}"
            _TASK_QUEUES[legacy] = queue
            app.task(**{**options, "name": legacy})(func)
        return task

    return decorator


def task_send(name: str, *, args: list[Any] | None = None, **options: Any) -> None:
    """Queue the task called `name` (a module path) on its own queue.

    For a service that must start a task of its own app's `tasks` module, which imports
    that service: naming the task breaks the import cycle without an import hidden in a
    function. The module is loaded here so the task is registered with its queue; a name
    that is not a task raises KeyError at once (tests/unit/test_task_names.py checks every
    literal name in the code)."""
    importlib.import_module(name.rsplit(".", 1)[0])
    app.tasks[name].apply_async(args=tuple(args or ()), **options)
