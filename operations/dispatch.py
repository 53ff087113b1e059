"""Getting every Operation worked on exactly once, whatever fails.

- `operation_dispatch` sends an operation's task after the creating transaction commits;
  a broker that is down then does not fail the request: the operation stays pending.
- `operations_redispatch` (beat, every minute) sends again what nobody works on: pending
  operations older than a grace period, and running ones whose worker is gone.
- `exclusive_operation` wraps a task's work in a PostgreSQL advisory lock keyed by the
  operation, held on the worker's database session: a duplicate message (a redispatch, a
  broker redelivery) finds the lock taken and does nothing; a worker killed with SIGKILL
  loses its session, so the lock frees itself and the redelivered task resumes the work
  (it waits a few seconds for the lock: the broker can redeliver before the database has
  ended the dead session).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from core.celery import app
from core.db.locks import advisory_key, advisory_lock
from operations.choices import OperationState
from operations.models import Operation

logger = logging.getLogger(__name__)

# The task (and its queue) that works on each kind of operation, by name: no imports of
# other apps here, and a web process can send them without loading every tasks module.
_LIFECYCLE = ("clusters.tasks.cluster_lifecycle_task", "provisioning")
TASKS = {
    "cluster.provision": _LIFECYCLE,
    "cluster.scale": _LIFECYCLE,
    "cluster.upgrade": _LIFECYCLE,
    "cluster.delete": _LIFECYCLE,
    "cluster.deregister": ("clusters.tasks.cluster_deregister_task", "provisioning"),
    "cluster.pool_update": ("clusters.tasks.cluster_pool_update_task", "provisioning"),
    "application.rollout": ("applications.tasks.application_rollout_task", "placement"),
    "application.delete": ("applications.tasks.application_delete_task", "placement"),
    "gitops.sync": ("gitops.tasks.git_sync_task", "default"),
    "update.run": ("updates.tasks.update_run_task", "default"),
}
PENDING_GRACE = timedelta(seconds=90)
# A task redelivered because its worker died (SIGKILL, host lost) can reach another worker
# before PostgreSQL has ended the dead worker's session and freed its lock: a task finding
# the lock taken tries again for this long before leaving the operation to its holder.
DEAD_SESSION_WAIT = 5.0

P = ParamSpec("P")
R = TypeVar("R")


def _lock_key(operation_id: UUID | str) -> int:
    return advisory_key(operation_id)


@contextmanager
def operation_lock(operation_id: UUID | str) -> Iterator[bool]:
    """Try to hold the operation's advisory lock for the block; yields whether we hold it."""
    with advisory_lock(_lock_key(operation_id)) as held:
        yield held


def exclusive_operation(run: Callable[P, R]) -> Callable[P, R | None]:
    """For `*_run(operation_id=...)` functions: run only while holding the lock."""

    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        operation_id = kwargs["operation_id"]
        assert isinstance(operation_id, UUID | str)
        deadline = time.monotonic() + DEAD_SESSION_WAIT
        while True:
            with operation_lock(operation_id) as held:
                if held:
                    return run(*args, **kwargs)
            if time.monotonic() >= deadline:
                logger.info("operation %s is being worked on elsewhere; skipped", operation_id)
                return None
            time.sleep(0.25)

    return wrapper


def _send(
    operation_id: UUID | str,
    task: tuple[str, str],
    *,
    kwargs: dict[str, Any] | None = None,
    countdown: float | None = None,
) -> bool:
    name, queue = task
    try:
        app.send_task(
            name,
            args=[str(operation_id)],
            kwargs=kwargs,
            countdown=countdown,
            queue=queue,
            routing_key=queue,
        )
    except Exception as error:  # the broker is down: the sweeper sends it later
        logger.warning(
            "could not queue operation %s (%s); it will be sent again", operation_id, error
        )
        return False
    return True


def operation_dispatch(operation: Operation) -> None:
    """Queue the operation's task once the current transaction commits."""
    task = TASKS[operation.kind]
    transaction.on_commit(lambda: _send(operation.pk, task))


def operation_send_check(
    operation_id: UUID | str, kind: str, *, tick: int, countdown: float
) -> bool:
    """Send check `tick` of an operation driven by short checks, `countdown` seconds from
    now (False if the broker is down: the sweeper resends it)."""
    return _send(operation_id, TASKS[kind], kwargs={"tick": tick}, countdown=countdown)


def operation_check_later(operation: Operation, *, tick: int, countdown: float) -> None:
    """Queue the next check (`tick`) of an operation driven by short checks, `countdown`
    seconds after the current transaction commits. A lost message is resent by the
    sweeper, which sends no tick: the task then does the check that is due."""
    task = TASKS[operation.kind]
    operation_id = operation.pk
    transaction.on_commit(
        lambda: _send(operation_id, task, kwargs={"tick": tick}, countdown=countdown)
    )


def _unattended(operation: Operation) -> bool:
    with operation_lock(operation.pk) as free:
        return free


def operations_redispatch(*, now: Any = None) -> int:
    """Send again what nobody works on; returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    pending = Operation.objects.filter(
        state=OperationState.PENDING,
        kind__in=TASKS,
        cancel_requested=False,
        created_at__lt=now - PENDING_GRACE,
    )
    running = Operation.objects.filter(
        state=OperationState.RUNNING, kind__in=TASKS, updated_at__lt=now - PENDING_GRACE
    )
    for operation in [*pending[:500], *running[:500]]:
        if operation.state == OperationState.RUNNING and not _unattended(operation):
            continue
        if _send(operation.pk, TASKS[operation.kind]):
            sent += 1
            logger.info("operation %s (%s) sent again", operation.pk, operation.kind)
    return sent
