"""Deleting an application: removed from every cluster, then forgotten (an Operation)."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from applications.models import Application, ClusterWork
from applications.propagation import work_remove
from applications.rollout.start import refuse_while_rolling_out
from audit.services import audit_record
from operations.choices import LogLevel, OperationState
from operations.dispatch import exclusive_operation, operation_dispatch
from operations.models import Operation
from operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_update,
)

DELETE_KIND = "application.delete"


def application_delete_start(
    *, application: Application, actor: AbstractBaseUser | None
) -> Operation:
    """Remove the application from every cluster, then forget it (an Operation)."""
    with transaction.atomic():
        locked = Application.objects.select_for_update().get(pk=application.pk)
        refuse_while_rolling_out(locked)
        operation = operation_create(
            kind=DELETE_KIND,
            created_by=actor,
            target=locked,
            team=locked.team,
            params={"application_id": locked.pk},
            message=f"Removing {locked.name} from its clusters",
        )
        audit_record(actor=actor, action="application.delete", target=locked, team=locked.team)
        operation_dispatch(operation)
    return operation


@exclusive_operation
def application_delete_run(*, operation_id: UUID) -> None:
    if not operation_claim(operation_id=operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    application = Application.objects.filter(pk=operation.params["application_id"]).first()
    if application is None:
        operation_finish(
            operation_id=operation_id, state=OperationState.SUCCEEDED, message="Already removed"
        )
        return
    works = list(ClusterWork.objects.filter(application=application).select_related("cluster"))
    failed = []
    for index, work in enumerate(works, start=1):
        outcome = work_remove(work)
        operation_update(
            operation_id=operation_id,
            progress=int(90 * index / len(works)),
            log=f"{work.cluster.name}: {outcome.message}",
            level=LogLevel.INFO if outcome.ok else LogLevel.ERROR,
        )
        if not outcome.ok:
            failed.append(work.cluster.name)
    if failed:
        operation_finish(
            operation_id=operation_id,
            state=OperationState.FAILED,
            error=f"Could not remove {application.name} from {', '.join(failed)}; the "
            "application is kept so that removal can be retried.",
        )
        return
    name = application.name
    application.delete()
    operation_finish(
        operation_id=operation_id,
        state=OperationState.SUCCEEDED,
        message=f"{name} removed from {len(works)} cluster(s) and deleted",
    )
