"""Per object sync state of a repository, and drift: an object changed outside Git.

After each applied sync the declaration of every object is stored (`GitObject.declared`,
in gitops.state's form). Each poll and the end of each sync compare the database with it
(no fetch): an object that differs is drifted, with the field diff a sync would undo (a
drifted object is a `change` of the next plan, which re-applies it). Failed: the last sync
failed on the object, or its rollout did. Pending: a planned commit would change it, or it
is rolling out or being pruned. A rollout's progress is read when the states are shown
(`with_rollouts`), not stored."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from applications.models import Application
from gitops.choices import ObjectStatus, SyncResult, SyncTrigger
from gitops.documents import APPLY_ORDER, KINDS, Desired
from gitops.models import GitObject, GitRepository, GitSync
from gitops.plan import Action, field_diff
from gitops.state import owned_state
from operations.choices import OperationState
from operations.models import Operation

logger = logging.getLogger(__name__)
Key = tuple[str, str]
# "fleet/web.yaml:20: Placement web: ...", "Application web: not rolled out: ...",
# "fleet/p.yaml:1: Policy no-latest exists and is not managed by this repository".
_NAMED = re.compile(r"^(?:\S+:\d+: )?(?P<kind>[A-Z][A-Za-z]+) (?P<name>[a-z0-9][a-z0-9.-]*)[: ]")
DECLARATION_FIELDS = ["file", "line", "commit", "declared", "rollout", "rollout_error"]
STATUS_FIELDS = ["status", "reason", "diff"]


@dataclass(frozen=True)
class Status:
    status: str
    reason: str = ""
    diff: dict[str, Any] = field(default_factory=dict)


def object_status(
    *,
    declared: dict[str, Any] | None,
    current: dict[str, Any] | None,
    failure: str = "",
    pending: str = "",
) -> Status:
    """An object's status from what the last applied commit declared (None: never
    applied), its state now (None: the repository no longer owns it), why it failed and
    what is pending. Failed wins over drifted, drifted over pending; the diff is kept."""
    diff: dict[str, Any] = {}
    drift = ""
    if declared is not None:
        if current is None:
            drift = "deleted or released outside Git"
        else:
            diff = field_diff(current, declared)
            if diff:
                drift = f"changed outside Git: {', '.join(diff)}"
    if failure:
        return Status(ObjectStatus.FAILED, failure, diff)
    if drift:
        return Status(ObjectStatus.DRIFTED, drift, diff)
    if pending or declared is None:
        return Status(ObjectStatus.PENDING, pending or "not applied yet")
    return Status(ObjectStatus.SYNCED)


def named_objects(errors: list[str]) -> dict[Key, str]:
    """The objects a sync's errors name, with the first error of each. A document that
    is part of an application (a Placement) counts as the application."""
    named: dict[Key, str] = {}
    for error in errors:
        match = _NAMED.match(error)
        if match is None or match["kind"] not in KINDS:
            continue
        kind = match["kind"] if match["kind"] in APPLY_ORDER else "Application"
        named.setdefault((kind, match["name"]), error)
    return named


def planned_changes(plan: list[dict[str, Any]], commit: str) -> dict[Key, str]:
    """What a plan that waits for approval would do to each object."""
    return {
        (change["kind"], change["name"]): f"would {change['action']} at {commit[:7]}"
        for change in plan
        if change["action"] != Action.UNCHANGED
    }


def drift_record_applied(
    *, repository: GitRepository, commit: str, desired: list[Desired], plan: list[dict[str, Any]]
) -> None:
    """After a sync applied `plan` at `commit`: store what each declared object must be;
    forget what is no longer declared (pruned or orphaned). A rollout the sync started,
    or why none did, replaces the previous one; otherwise it is kept."""
    changes = {(c["kind"], c["name"]): c for c in plan}
    rows = {(r.kind, r.name): r for r in GitObject.objects.filter(repository=repository)}
    declared = {(d.kind, d.name) for d in desired}
    stale = [row.pk for key, row in rows.items() if key not in declared]
    GitObject.objects.filter(pk__in=stale).delete()
    new: list[GitObject] = []
    changed: list[GitObject] = []
    for item in desired:
        row = rows.get((item.kind, item.name))
        if row is None:
            row = GitObject(repository=repository, kind=item.kind, name=item.name)
            new.append(row)
        before = [getattr(row, name) for name in DECLARATION_FIELDS]
        row.file, row.line, row.commit, row.declared = item.file, item.line, commit, item.state
        change = changes.get((item.kind, item.name), {})
        if "rollout" in change or "rollout_error" in change:
            row.rollout = change.get("rollout")
            row.rollout_error = change.get("rollout_error", "")
        if row.pk and before != [getattr(row, name) for name in DECLARATION_FIELDS]:
            changed.append(row)  # a sync that changes nothing writes nothing here
    GitObject.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    GitObject.objects.bulk_update(changed, DECLARATION_FIELDS, batch_size=500)


def drift_refresh(repository: GitRepository, *, now: datetime | None = None) -> dict[str, int]:
    """Compare every object the repository declares with the database (no fetch) and
    store each one's status; the number of objects per status."""
    now = now or timezone.now()
    rows = {(r.kind, r.name): r for r in GitObject.objects.filter(repository=repository)}
    current = owned_state(repository)
    # The last plan or failure shown on the page (a rollback's preview is not the ref's).
    last = (
        GitSync.objects.filter(repository=repository)
        .exclude(result=SyncResult.PENDING)
        .exclude(trigger=SyncTrigger.ROLLBACK, apply=False)
        .only("result", "commit", "plan", "errors")
        .first()
    )
    failures = named_objects(last.errors) if last and last.result == SyncResult.FAILED else {}
    plan = last.plan if last and last.result == SyncResult.PLANNED else []
    planned = planned_changes(plan, last.commit if last else "")
    pruning = Application.objects.filter(
        managed_by__repository=repository.pk, managed_by__pruning=True
    ).values_list("name", flat=True)
    pending = dict(planned)
    pending.update({("Application", name): "being removed from its clusters" for name in pruning})
    where = {(c["kind"], c["name"]): (c.get("file", ""), c.get("line", 0)) for c in plan}
    for key in pending:
        if key not in rows:
            file, line = where.get(key, ("", 0))
            rows[key] = GitObject(
                repository=repository, kind=key[0], name=key[1], file=file, line=line
            )
    counts = dict.fromkeys(ObjectStatus.values, 0)
    new: list[GitObject] = []
    changed: list[GitObject] = []
    stale: list[GitObject] = []
    for key, row in rows.items():
        failure = failures.get(key) or (
            f"not rolled out: {row.rollout_error}" if row.rollout_error else ""
        )
        waiting = pending.get(key, "")
        if not row.commit and not failure and not waiting:
            stale.append(row)  # never applied, and no plan or failure speaks of it now
            continue
        status = object_status(
            declared=row.declared if row.commit else None,
            current=current.get(key),
            failure=failure,
            pending=waiting,
        )
        counts[status.status] += 1
        if row.pk and (row.status, row.reason, row.diff) == (
            status.status,
            status.reason,
            status.diff,
        ):
            continue  # as before: nothing to write
        row.status, row.reason, row.diff, row.since = status.status, status.reason, status.diff, now
        (changed if row.pk else new).append(row)
    GitObject.objects.filter(pk__in=[row.pk for row in stale if row.pk]).delete()
    GitObject.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    GitObject.objects.bulk_update(changed, [*STATUS_FIELDS, "since"], batch_size=500)
    return counts


def drift_refresh_quietly(repository: GitRepository) -> None:
    """drift_refresh where a failure must not fail what called it (a sync that ended)."""
    try:
        drift_refresh(repository)
    except Exception:
        logger.exception("drift of repository %s not refreshed", repository.pk)


def with_rollouts(rows: list[GitObject]) -> list[GitObject]:
    """The stored states, with each application's rollout as it is now (one query; not
    saved): running, a synced one is pending; failed or canceled, it is failed."""
    ids = [row.rollout for row in rows if row.rollout]
    found = Operation.objects.filter(pk__in=ids).values_list("pk", "state", "error")
    states = {pk: (state, error) for pk, state, error in found}
    for row in rows:
        state, error = states.get(row.rollout, ("", "")) if row.rollout else ("", "")
        if state in (OperationState.FAILED, OperationState.CANCELED) and row.status in (
            ObjectStatus.SYNCED,
            ObjectStatus.PENDING,
        ):
            first = (error or "").strip().splitlines()[:1]
            row.status = ObjectStatus.FAILED
            row.reason = f"rollout {state}" + (f": {first[0]}" if first else "")
        elif state in (OperationState.PENDING, OperationState.RUNNING) and (
            row.status == ObjectStatus.SYNCED
        ):
            row.status, row.reason = ObjectStatus.PENDING, "rolling out"
    return rows
