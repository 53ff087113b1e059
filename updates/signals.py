"""Update runs' answers to what lower layers ask (connected in UpdatesConfig.ready)."""

from __future__ import annotations

from typing import Any

from applications.models import Application
from updates.choices import RUN_FINAL, ChangeKind, RunState
from updates.models import UpdateRun

# A run holds what it changes from its start until it ends: paused or waiting for an
# approval, some clusters already run the new version and others do not.
RUN_UNDER_WAY = [state for state in RunState.values if state not in RUN_FINAL | {RunState.DRAFT}]


def application_held_by_run(sender: Any, application: Application, **kwargs: Any) -> str | None:
    """The update run moving `application` to a version cluster by cluster, if one is under
    way (applications.holds): reconcile, rollouts, evictions and deletion wait for it."""
    run = (
        UpdateRun.objects.filter(
            team_id=application.team_id,
            change_kind=ChangeKind.APPLICATION_VERSION,
            change_params__application=application.name,
            state__in=RUN_UNDER_WAY,
        )
        .only("name", "state", "change_params")
        .first()
    )
    if run is None:
        return None
    return (
        f"Update run {run.name!r} ({run.get_state_display().lower()}) is moving "
        f"{application.name} to version {run.change_params.get('version')} cluster by "
        "cluster; wait for it to end, or abort it."
    )
