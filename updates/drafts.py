"""Deleting a draft run (the "Delete draft" button): not among the engine's service
signatures, so it lives here until it moves into updates.services."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit_record
from updates.choices import RunState
from updates.models import UpdateRun


@transaction.atomic
def update_run_delete_draft(*, actor: AbstractBaseUser | None, run: UpdateRun) -> None:
    """Delete a run that was never started (its stage and cluster rows go with it). A run
    that started is history: abort it instead."""
    locked = UpdateRun.objects.select_for_update().get(pk=run.pk)
    if locked.state != RunState.DRAFT:
        raise ValidationError(
            {"state": f"Only a draft can be deleted; this run is {locked.get_state_display()}."}
        )
    audit_record(
        actor=actor,
        action="update_run.delete",
        target=locked,
        team=locked.team,
        detail={"change_kind": locked.change_kind, "change_params": locked.change_params},
    )
    locked.delete()
