"""Creating and driving Operations; every change is pushed to the operation's websocket group.

Workers call these from Celery tasks; a task redelivered after its worker died finds the
operation already running and resumes it (`operation_claim` accepts running ones).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Team
from audit.services import audit_record
from core.celery import app
from operations.choices import FINAL_STATES, LogLevel, OperationState
from operations.models import Operation, OperationLogLine

logger = logging.getLogger(__name__)

SNAPSHOT_LOG_LINES = 100


def operation_group(operation_id: UUID | str) -> str:
    return f"operation.{operation_id}"


def operation_snapshot(operation: Operation) -> dict[str, Any]:
    """What a browser needs to draw the operation: state, progress and the log's tail."""
    lines = list(
        OperationLogLine.objects.filter(operation_id=operation.pk).order_by("-id")[
            :SNAPSHOT_LOG_LINES
        ]
    )
    return {
        "id": str(operation.pk),
        "kind": operation.kind,
        "target": {
            "type": operation.target_type,
            "id": operation.target_id,
            "name": operation.target_repr,
        },
        "state": operation.state,
        "progress": operation.progress,
        "message": operation.message,
        "error": operation.error,
        "cancel_requested": operation.cancel_requested,
        "version": operation.version,
        "created_at": operation.created_at.isoformat() if operation.created_at else None,
        "started_at": operation.started_at.isoformat() if operation.started_at else None,
        "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
        "log": [
            {"id": line.pk, "at": line.at.isoformat(), "level": line.level, "text": line.text}
            for line in reversed(lines)
        ],
    }


def _publish(operation_id: UUID) -> None:
    """Send the current snapshot to subscribers. A Redis outage must not fail the work:
    browsers re-fetch the snapshot when they reconnect."""
    try:
        operation = Operation.objects.get(pk=operation_id)
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(
            operation_group(operation_id),
            {"type": "operation.update", "snapshot": operation_snapshot(operation)},
        )
    except Exception:
        logger.warning("could not publish update of operation %s", operation_id, exc_info=True)


def _publish_on_commit(operation_id: UUID) -> None:
    transaction.on_commit(lambda: _publish(operation_id))


@transaction.atomic
def operation_create(
    *,
    kind: str,
    created_by: AbstractBaseUser | None,
    target: models.Model | None = None,
    team: Team | None = None,
    params: dict[str, Any] | None = None,
    message: str = "Queued",
) -> Operation:
    operation = Operation(
        kind=kind,
        team=team,
        created_by_id=created_by.pk if created_by is not None else None,
        params=params or {},
        message=message,
    )
    if target is not None:
        operation.target_type = target._meta.label_lower
        operation.target_id = str(target.pk)
        operation.target_repr = str(target)[:200]
    operation.save()
    _publish_on_commit(operation.pk)
    return operation


def operation_claim(*, operation_id: UUID) -> bool:
    """Mark a pending operation running. True if the caller should (re)do the work:
    also for an operation already running, whose first worker died mid-way."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, state=OperationState.PENDING).update(
        state=OperationState.RUNNING, started_at=now, version=F("version") + 1, updated_at=now
    )
    if claimed:
        _publish_on_commit(operation_id)
        return True
    # Nothing got updated: either it is running already (a redelivery) or it has ended.
    return Operation.objects.filter(pk=operation_id, state=OperationState.RUNNING).exists()


@transaction.atomic
def operation_update(
    *,
    operation_id: UUID,
    progress: int | None = None,
    message: str | None = None,
    log: str | None = None,
    level: LogLevel = LogLevel.INFO,
) -> None:
    """Record progress and/or a log line of a running operation."""
    changes: dict[str, Any] = {"version": F("version") + 1, "updated_at": timezone.now()}
    if progress is not None:
        if not 0 <= progress <= 100:
            raise ValidationError({"progress": "Progress is a percentage from 0 to 100."})
        changes["progress"] = progress
    if message is not None:
        changes["message"] = message[:500]
    updated = (
        Operation.objects.filter(pk=operation_id).exclude(state__in=FINAL_STATES).update(**changes)
    )
    if not updated:
        return  # ended (for instance canceled) meanwhile: late updates are dropped
    if log:
        OperationLogLine.objects.create(operation_id=operation_id, level=level, text=log)
    _publish_on_commit(operation_id)


@transaction.atomic
def operation_finish(
    *,
    operation_id: UUID,
    state: OperationState,
    message: str = "",
    error: str = "",
    result: dict[str, Any] | None = None,
) -> bool:
    """End an operation once; False if it had ended already."""
    if state not in FINAL_STATES:
        raise ValueError(f"{state} is not a final state")
    now = timezone.now()
    changes: dict[str, Any] = {
        "state": state,
        "finished_at": now,
        "updated_at": now,
        "version": F("version") + 1,
        "message": message[:500],
        "error": error,
    }
    if state == OperationState.SUCCEEDED:
        changes["progress"] = 100
    if result is not None:
        changes["result"] = result
    ended = (
        Operation.objects.filter(pk=operation_id).exclude(state__in=FINAL_STATES).update(**changes)
    )
    if ended:
        level = LogLevel.ERROR if state == OperationState.FAILED else LogLevel.INFO
        OperationLogLine.objects.create(
            operation_id=operation_id, level=level, text=error or message or str(state)
        )
        _publish_on_commit(operation_id)
        if state == OperationState.FAILED or (result or {}).get("rolled_back"):
            _alerts_on_commit(operation_id)
    return bool(ended)


# An operation failed or rolled back: alerts re-checks its team's rules at once (sent by
# name: alerts sits above operations). A lost message is covered by alerts' periodic pass.
OPERATION_ENDED_TASK = "alerts.tasks.alerts_operation_ended_task"


def _alerts_on_commit(operation_id: UUID) -> None:
    team_id = Operation.objects.filter(pk=operation_id).values_list("team_id", flat=True).first()

    def send() -> None:
        try:
            app.send_task(
                OPERATION_ENDED_TASK, args=[team_id], queue="alerts", routing_key="alerts"
            )
        except Exception:
            logger.warning(
                "could not queue %s for operation %s", OPERATION_ENDED_TASK, operation_id
            )

    transaction.on_commit(send)


def operation_should_stop(*, operation_id: UUID) -> bool:
    """Checked by long tasks between steps: was a cancel requested?"""
    return Operation.objects.filter(pk=operation_id, cancel_requested=True).exists()


@transaction.atomic
def operation_cancel(*, operation: Operation, actor: AbstractBaseUser | None) -> Operation:
    """Cancel a pending operation at once; ask a running one to stop at its next step."""
    locked = Operation.objects.select_for_update().get(pk=operation.pk)
    if locked.is_final:
        raise ValidationError(f"The operation has already ended ({locked.state}).")
    now = timezone.now()
    if locked.state == OperationState.PENDING:
        locked.state = OperationState.CANCELED
        locked.finished_at = now
        locked.message = "Canceled before it started"
    locked.cancel_requested = True
    locked.version += 1
    locked.save()
    OperationLogLine.objects.create(
        operation=locked,
        level=LogLevel.WARNING,
        text=f"Cancel requested by {actor.get_username() if actor else 'the system'}",
    )
    audit_record(actor=actor, action="operation.cancel", target=locked, team=locked.team)
    _publish_on_commit(locked.pk)
    return locked
