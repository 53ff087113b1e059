"""Update strategies, maintenance windows and runs: every write validated, saved and
audited in one call. Pages, API, tasks and commands call these.

SKELETON: the signatures are the contract between the engine, the pages and the API;
the bodies are filled in by the engine's work.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Team
from operations.models import Operation
from updates.models import MaintenanceWindow, UpdateRun, UpdateStrategy


def update_strategy_save(
    *, actor: AbstractBaseUser | None, strategy: UpdateStrategy
) -> UpdateStrategy:
    """Create or update a strategy; its stages are validated (updates.strategy)."""
    raise NotImplementedError


def update_strategy_delete(*, actor: AbstractBaseUser | None, strategy: UpdateStrategy) -> None:
    raise NotImplementedError


def maintenance_window_save(
    *, actor: AbstractBaseUser | None, window: MaintenanceWindow
) -> MaintenanceWindow:
    raise NotImplementedError


def maintenance_window_delete(*, actor: AbstractBaseUser | None, window: MaintenanceWindow) -> None:
    raise NotImplementedError


def update_run_create(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    strategy: UpdateStrategy,
    change_kind: str,
    change_params: dict[str, Any],
    gates: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> UpdateRun:
    """A draft run: the strategy's stages copied, every cluster planned (skipped ones with
    their reason). Nothing changes on any cluster until `update_run_start`."""
    raise NotImplementedError


def update_run_preview(*, run: UpdateRun) -> dict[str, Any]:
    """Every stage with its groups and clusters, what changes on each (from → to, skipped
    and why), when each cluster's next maintenance window opens, the expected duration,
    and the change kind's impact (a policy's objects that would be denied)."""
    raise NotImplementedError


def update_run_start(*, actor: AbstractBaseUser | None, run: UpdateRun) -> Operation:
    raise NotImplementedError


def update_run_pause(*, actor: AbstractBaseUser | None, run: UpdateRun) -> UpdateRun:
    raise NotImplementedError


def update_run_resume(*, actor: AbstractBaseUser | None, run: UpdateRun) -> UpdateRun:
    raise NotImplementedError


def update_run_abort(*, actor: AbstractBaseUser | None, run: UpdateRun) -> UpdateRun:
    """Stop starting changes; changes under way finish; nothing is reverted."""
    raise NotImplementedError


def update_run_skip_cluster(
    *, actor: AbstractBaseUser | None, run: UpdateRun, cluster_name: str
) -> UpdateRun:
    raise NotImplementedError


def update_run_approve_stage(
    *, actor: AbstractBaseUser | None, run: UpdateRun, stage_index: int
) -> UpdateRun:
    """An operator or admin of the run's team lets a stage that waits for approval start."""
    raise NotImplementedError


def update_run_check(*, run_id: UUID) -> None:
    """One check of a running run (the task's work): do what is due, schedule the next."""
    raise NotImplementedError
