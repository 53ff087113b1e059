"""Git repositories and their syncs. A sync is an Operation: fetch (git, shallow), read
and validate every document, plan against what the repository owns, and (unless it is a
preview) apply the plan in one transaction through the API's own services."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Team, slug_validator
from audit.services import audit_identity, audit_record
from core.crypto import decrypt, encrypt
from core.db.locks import advisory_lock
from gitops.choices import PrunePolicy, SyncResult, SyncTrigger
from gitops.documents import DocumentErrors, desired_objects, parse_documents, read_files
from gitops.drift import drift_record_applied, drift_refresh, drift_refresh_quietly
from gitops.git import (
    GitError,
    egress_errors,
    git_fetch,
    git_fetch_commit,
    path_errors,
    ref_errors,
    url_errors,
)
from gitops.models import GitRepository, GitSync
from gitops.plan import Action, make_plan, plan_summary
from gitops.preview import enrich
from gitops.rollouts import rollouts_start
from gitops.state import adoptable_state, apply_plan, conflicts, owned_state, release
from operations.choices import OperationState
from operations.dispatch import exclusive_operation, operation_dispatch
from operations.models import Operation
from operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_update,
)

logger = logging.getLogger(__name__)
SYNC_KIND = "gitops.sync"
# Advisory lock namespace: one sync of a repository at a time (its checkout is shared).
LOCK_NAMESPACE = 2301
EDITABLE = (
    "url",
    "ref",
    "path",
    "credentials",
    "webhook_secret",
    "poll_interval",
    "prune",
    "auto_apply",
    "adopt",
)


def identity(repository: GitRepository) -> str:
    """The actor name of what a sync changes, in the audit log."""
    return f"git-repository:{repository.team.name}/{repository.name}"


def checkout_dir(repository: GitRepository) -> Path:
    return Path(settings.KEELSON_GITOPS_DIR) / str(repository.pk)


def _check(data: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    for key, check in (("url", url_errors), ("ref", ref_errors), ("path", path_errors)):
        if key in data and (problems := check(str(data[key]))):
            errors[key] = problems
    if "url" in data and "url" not in errors and (problems := egress_errors(str(data["url"]))):
        errors["url"] = problems
    if "prune" in data and data["prune"] not in PrunePolicy.values:
        errors["prune"] = [f"Use one of {', '.join(PrunePolicy.values)}."]
    if errors:
        raise ValidationError(errors)


def _set_secrets(repository: GitRepository, data: dict[str, Any]) -> None:
    if "credentials" in data:
        repository.credentials_encrypted = (
            encrypt(data["credentials"]) if data["credentials"] else ""
        )
    if "webhook_secret" in data:
        secret = data["webhook_secret"]
        repository.webhook_secret_encrypted = encrypt(secret) if secret else ""


@transaction.atomic
def git_repository_create(
    *, actor: AbstractBaseUser | None, team: Team, name: str, **data: Any
) -> GitRepository:
    slug_validator(name)
    _check(data)
    if GitRepository.objects.filter(team=team, name=name).exists():
        raise ValidationError({"name": [f"The team already has a repository named {name}."]})
    repository = GitRepository(team=team, name=name)
    for key in ("url", "ref", "path", "poll_interval", "prune", "auto_apply", "adopt"):
        if key in data:
            setattr(repository, key, data[key])
    _set_secrets(repository, data)
    if actor is not None and actor.is_authenticated:
        repository.created_by_id = actor.pk
    repository.full_clean()
    repository.save()
    audit_record(actor=actor, action="gitrepository.create", target=repository, team=team)
    return repository


@transaction.atomic
def git_repository_update(
    *, actor: AbstractBaseUser | None, repository: GitRepository, changes: dict[str, Any]
) -> GitRepository:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError({key: ["This field cannot be changed."] for key in unknown})
    _check(changes)
    locked = GitRepository.objects.select_for_update().get(pk=repository.pk)
    for key in ("url", "ref", "path", "poll_interval", "prune", "auto_apply", "adopt"):
        if key in changes:
            setattr(locked, key, changes[key])
    _set_secrets(locked, changes)
    locked.full_clean()
    locked.save()
    audit_record(
        actor=actor,
        action="gitrepository.update",
        target=locked,
        team=locked.team,
        detail={"fields": sorted(changes)},
    )
    return locked


@transaction.atomic
def git_repository_delete(*, actor: AbstractBaseUser | None, repository: GitRepository) -> None:
    """Forget the repository; what it owns stays, released (editable again)."""
    release(repository)
    audit_record(
        actor=actor,
        action="gitrepository.delete",
        target=repository,
        team=repository.team,
        detail={"name": repository.name},
    )
    repository.delete()


@transaction.atomic
def git_sync_start(
    *,
    repository: GitRepository,
    trigger: SyncTrigger,
    actor: AbstractBaseUser | None,
    apply: bool | None = None,
    commit: str = "",
    pin: str = "",
) -> GitSync:
    """Queue a sync (an Operation). `apply` defaults to: previews never, manual syncs
    always, poll and webhook syncs when the repository applies automatically. With
    `commit` (the approval of a previewed plan) the sync applies only if the ref is still
    at that commit. With `pin` (a rollback, gitops.rollback) it syncs that commit; a
    pinned repository syncs its pinned commit."""
    if commit and not (len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)):
        raise ValidationError({"commit": ["Use a full commit sha (40 hex digits)."]})
    if apply is None:
        apply = trigger == SyncTrigger.MANUAL or (
            trigger != SyncTrigger.PREVIEW and repository.auto_apply
        )
    sync = GitSync.objects.create(repository=repository, trigger=trigger, apply=apply)
    operation = operation_create(
        kind=SYNC_KIND,
        created_by=actor,
        target=repository,
        team=repository.team,
        params={"sync_id": sync.pk, "commit": commit, "pin": pin},
        message=f"{'Syncing' if apply else 'Planning'} {repository.name}",
    )
    GitSync.objects.filter(pk=sync.pk).update(operation=operation)
    sync.operation = operation
    audit_record(
        actor=actor,
        action="gitrepository.sync",
        target=repository,
        team=repository.team,
        detail={"trigger": str(trigger), "apply": apply, "sync": sync.pk},
    )
    operation_dispatch(operation)
    return sync


def _finish(sync: GitSync, operation_id: UUID, result: SyncResult, errors: list[str]) -> None:
    now = timezone.now()
    GitSync.objects.filter(pk=sync.pk).update(
        result=result, errors=errors, plan=sync.plan, commit=sync.commit, finished_at=now
    )
    repo_changes: dict[str, Any] = {"last_result": result, "last_synced_at": now}
    if sync.commit:
        repo_changes["last_commit"] = sync.commit
    # A rollback's preview says nothing about the ref: the repository keeps its last sync.
    if sync.apply or sync.trigger != SyncTrigger.ROLLBACK:
        GitRepository.objects.filter(pk=sync.repository_id).update(**repo_changes)
    counts = plan_summary_of(sync.plan)
    drift_refresh_quietly(sync.repository)
    if result == SyncResult.FAILED:
        operation_finish(
            operation_id=operation_id,
            state=OperationState.FAILED,
            error="\n".join(errors[:20]),
            result={"sync": sync.pk, "commit": sync.commit, "errors": errors[:100]},
        )
        return
    message = f"{result.label} at {sync.commit[:7]}: " + ", ".join(
        f"{n} {a}" for a, n in counts.items() if n and a != Action.UNCHANGED
    ).rstrip(": ")
    operation_finish(
        operation_id=operation_id,
        state=OperationState.SUCCEEDED,
        message=message.rstrip(": "),
        result={
            "sync": sync.pk,
            "commit": sync.commit,
            "summary": counts,
            "rollouts": {c["name"]: c["rollout"] for c in sync.plan if c.get("rollout")},
        },
    )


def plan_summary_of(plan: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for change in plan:
        counts[change["action"]] = counts.get(change["action"], 0) + 1
    return counts


@exclusive_operation
def git_sync_run(*, operation_id: UUID) -> None:
    if not operation_claim(operation_id=operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    sync = GitSync.objects.select_related("repository__team").get(pk=operation.params["sync_id"])
    with advisory_lock((LOCK_NAMESPACE, sync.repository_id), wait=True):
        try:
            sync.repository.refresh_from_db()  # pinned or unpinned while this one waited
            params = operation.params
            _run(sync, operation_id, str(params.get("commit") or ""), str(params.get("pin") or ""))
        except Exception:
            # Ended, not left running: a redispatch would only fail the same way again.
            logger.exception("sync %s of repository %s failed", sync.pk, sync.repository_id)
            _finish(sync, operation_id, SyncResult.FAILED, ["internal error; see the logs"])


def _planned_before(sync: GitSync) -> bool:
    """Whether a poll or webhook that only plans found the commit of the repository's
    last plan (planned or applied): it is not planned again until it changes."""
    if sync.apply or sync.trigger not in (SyncTrigger.POLL, SyncTrigger.WEBHOOK):
        return False
    last = (
        GitSync.objects.filter(repository_id=sync.repository_id)
        .filter(result__in=[SyncResult.PLANNED, SyncResult.APPLIED, SyncResult.UNCHANGED])
        .exclude(pk=sync.pk)
        .values_list("commit", flat=True)
        .first()
    )
    return last == sync.commit


def _skip(sync: GitSync, operation_id: UUID) -> None:
    """End a sync that had nothing new to plan, leaving no row in the history."""
    GitSync.objects.filter(pk=sync.pk).delete()
    operation_finish(
        operation_id=operation_id,
        state=OperationState.SUCCEEDED,
        message=f"No new commit: {sync.commit[:7]} is planned already",
        result={"sync": None, "commit": sync.commit},
    )


def _fetch(repository: GitRepository, target: str) -> str:
    """Fetch the ref's tip, or `target` (a pinned commit) of its history."""
    credentials = (
        decrypt(repository.credentials_encrypted) if repository.credentials_encrypted else ""
    )
    fetch = functools.partial(
        git_fetch_commit if target else git_fetch,
        url=repository.url,
        ref=repository.ref,
        workdir=checkout_dir(repository),
        credentials=credentials,
        ca_file=str(settings.KEELSON_GITOPS_CA_FILE),
    )
    return fetch(commit=target) if target else fetch()


def _run(sync: GitSync, operation_id: UUID, approved: str = "", pin: str = "") -> None:
    repository = sync.repository
    target = pin or repository.pinned_commit
    operation_update(
        operation_id=operation_id,
        progress=10,
        message="Fetching",
        log=f"git fetch {repository.ref}" + (f" (commit {target})" if target else ""),
    )
    try:
        sync.commit = _fetch(repository, target)
    except GitError as error:
        _finish(sync, operation_id, SyncResult.FAILED, [str(error)])
        return
    if approved and sync.commit != approved:
        moved = (
            f"{repository.name} is pinned at {target[:7]}; unpin it to apply {approved[:7]}."
            if target
            else f"{repository.ref} has moved to {sync.commit[:7]} since the approved plan of "
            f"{approved[:7]}; preview again."
        )
        _finish(sync, operation_id, SyncResult.FAILED, [moved])
        return
    if _planned_before(sync):
        _skip(sync, operation_id)
        return
    operation_update(
        operation_id=operation_id, progress=30, message="Validating", log=f"commit {sync.commit}"
    )
    try:
        files = read_files(checkout_dir(repository), repository.path)
        desired = desired_objects(
            parse_documents(files), team=repository.team.name, root=checkout_dir(repository)
        )
    except DocumentErrors as error:
        _finish(sync, operation_id, SyncResult.FAILED, error.errors)
        return
    if taken := conflicts(repository, desired):
        _finish(sync, operation_id, SyncResult.FAILED, taken)
        return
    operation_update(operation_id=operation_id, progress=60, message="Planning")
    changes = make_plan(
        desired,
        owned_state(repository),
        prune=repository.prune == PrunePolicy.PRUNE,
        adoptable=adoptable_state(repository, desired),
    )
    sync.plan = [change.as_json() for change in changes]
    counts = plan_summary(changes)
    if not sync.apply:
        # Only a plan that waits for someone's eyes: the clusters, cost and compliance
        # it would change (an applying sync goes on to do it).
        operation_update(operation_id=operation_id, progress=70, message="Previewing")
        enrich(sync.plan, desired, repository.team)
        _finish(sync, operation_id, SyncResult.PLANNED, [])
        return
    operation_update(operation_id=operation_id, progress=80, message="Applying")
    try:
        with audit_identity(identity(repository)), transaction.atomic():
            apply_plan(repository=repository, commit=sync.commit, changes=changes, desired=desired)
            audit_record(
                actor=None,
                action="gitrepository.apply",
                target=repository,
                team=repository.team,
                detail={"commit": sync.commit, "sync": sync.pk, **counts},
            )
    except (ValidationError, PermissionDenied) as error:
        messages = error.messages if isinstance(error, ValidationError) else [str(error)]
        _finish(sync, operation_id, SyncResult.FAILED, messages)
        return
    # Committed: now to the clusters, one rollout Operation per application (a pruned
    # one's deletion Operation was started by the apply).
    operation_update(operation_id=operation_id, progress=90, message="Rolling out")
    with audit_identity(identity(repository)):
        problems = rollouts_start(repository=repository, plan=sync.plan, commit=sync.commit)
    drift_record_applied(repository=repository, commit=sync.commit, desired=desired, plan=sync.plan)
    changed = any(counts[a] for a in counts if a != Action.UNCHANGED)
    result = SyncResult.APPLIED if changed else SyncResult.UNCHANGED
    _finish(sync, operation_id, result, problems)


def webhook_signature_valid(
    repository: GitRepository, body: bytes, header: str, gitlab_token: str = ""
) -> bool:
    """GitHub's and Gitea's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`,
    or GitLab's `X-Gitlab-Token: <the secret>`, compared in constant time. A repository
    without a secret accepts no webhook."""
    if not repository.webhook_secret_encrypted:
        return False
    secret = decrypt(repository.webhook_secret_encrypted).encode()
    if gitlab_token and not header:
        return hmac.compare_digest(secret, gitlab_token.encode())
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def git_repositories_poll(*, now: datetime | None = None) -> int:
    """Refresh the drift of every repository whose poll interval has passed and queue a
    sync of it unless it is pinned; returns how many syncs. Each repository is claimed
    with a conditional update, so two beats (or a redelivered task) queue it once per
    interval."""
    now = now or timezone.now()
    queued = 0
    due = GitRepository.objects.filter(poll_interval__gt=0).filter(
        Q(last_polled_at__isnull=True)
        | Q(last_polled_at__lte=now - timedelta(seconds=1) * F("poll_interval"))  # type: ignore[operator]
    )
    for repository in due.select_related("team")[:500]:
        claimed = GitRepository.objects.filter(
            pk=repository.pk, last_polled_at=repository.last_polled_at
        ).update(last_polled_at=now)
        if not claimed:
            continue  # Nothing got updated: another beat got there first.
        with advisory_lock((LOCK_NAMESPACE, repository.pk)) as free:
            if free:  # otherwise a sync is running, and refreshes the drift when it ends
                drift_refresh(repository, now=now)
        if repository.pinned_commit:
            continue  # Rolled back: nothing to fetch until it is unpinned.
        git_sync_start(repository=repository, trigger=SyncTrigger.POLL, actor=None)
        queued += 1
    return queued
