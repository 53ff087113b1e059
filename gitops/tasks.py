"""Celery wrappers of the gitops services (queue `default`)."""

from __future__ import annotations

from uuid import UUID

from core.celery import keelson_task
from gitops.services import git_repositories_poll, git_sync_run


@keelson_task(queue="default", idempotent=True, time_limit=900)
def git_sync_task(operation_id: str) -> None:
    git_sync_run(operation_id=UUID(operation_id))


@keelson_task(queue="default", time_limit=60)
def git_repositories_poll_task() -> int:
    return git_repositories_poll()
