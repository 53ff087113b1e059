"""Rollback: re-apply the state of an earlier commit, one this repository synced
successfully before. The sync is an Operation like any other (fetch of that commit, plan,
all-or-nothing apply, rollouts of what changed).

A rollback pins the repository to the commit at once, whether its sync then succeeds or
not: polls and webhooks leave a pinned repository alone, "Sync now" and previews work on
the pinned commit, so nothing re-applies the branch behind the user's back. Unpinning
resumes following the ref: the next poll (due at once) syncs its tip."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from gitops.choices import SyncResult, SyncTrigger
from gitops.models import GitRepository, GitSync
from gitops.services import git_sync_start

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def synced_commit(repository: GitRepository, commit: str) -> str:
    """The full sha of `commit` (a full sha or a prefix of at least 7 hex digits) among
    the commits the repository applied successfully; ValidationError on `commit`
    otherwise."""
    commit = commit.strip().lower()
    if not _COMMIT.match(commit):
        raise ValidationError({"commit": ["Use a commit sha (7 to 40 hex digits)."]})
    found = set(
        GitSync.objects.filter(
            repository=repository,
            apply=True,
            result__in=[SyncResult.APPLIED, SyncResult.UNCHANGED],
            commit__startswith=commit,
        ).values_list("commit", flat=True)
    )
    if not found:
        raise ValidationError(
            {"commit": [f"{commit} was never synced successfully by {repository.name}."]}
        )
    if len(found) > 1:
        raise ValidationError({"commit": [f"{commit} names more than one commit; give more."]})
    return found.pop()


@transaction.atomic
def git_rollback_start(
    *,
    repository: GitRepository,
    commit: str,
    actor: AbstractBaseUser | None,
    preview: bool = False,
) -> GitSync:
    """Queue the sync of an earlier commit and pin the repository to it; with `preview`,
    only its plan (nothing pinned or applied)."""
    sha = synced_commit(repository, commit)
    applied = (
        GitSync.objects.filter(repository=repository, apply=True)
        .filter(result__in=[SyncResult.APPLIED, SyncResult.UNCHANGED])
        .values_list("commit", flat=True)
        .first()
    )
    if not preview:
        locked = GitRepository.objects.select_for_update().get(pk=repository.pk)
        locked.pinned_commit, locked.pinned_at = sha, timezone.now()
        locked.save(update_fields=["pinned_commit", "pinned_at"])
        audit_record(
            actor=actor,
            action="gitrepository.rollback",
            target=locked,
            team=locked.team,
            detail={"commit": sha, "from": applied or ""},
        )
    return git_sync_start(
        repository=repository,
        trigger=SyncTrigger.ROLLBACK,
        actor=actor,
        apply=not preview,
        pin=sha,
    )


@transaction.atomic
def git_repository_unpin(
    *, repository: GitRepository, actor: AbstractBaseUser | None
) -> GitRepository:
    """Follow the ref again: the next poll syncs its tip (it is due at once). Unpinning a
    repository that is not pinned changes nothing."""
    locked = GitRepository.objects.select_for_update().get(pk=repository.pk)
    if not locked.pinned_commit:
        return locked
    pinned = locked.pinned_commit
    locked.pinned_commit, locked.pinned_at, locked.last_polled_at = "", None, None
    locked.save(update_fields=["pinned_commit", "pinned_at", "last_polled_at"])
    audit_record(
        actor=actor,
        action="gitrepository.unpin",
        target=locked,
        team=locked.team,
        detail={"commit": pinned},
    )
    return locked
