"""After a sync is applied, carry it to the clusters the way the API does: an application
created, or whose manifests, placement, overrides or rollout strategy changed, is rolled
out (`rollout_start`, an Operation each); a pruned one is already being removed by its
deletion operation (gitops.state)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from applications.models import Application
from applications.rollout import rollout_start
from gitops.models import GitRepository
from gitops.plan import Action

# The application fields that change what runs where; a description does not.
ROLLED_OUT = ("manifests", "placement", "overrides", "rollout")


def needs_rollout(change: dict[str, Any]) -> bool:
    """Whether a planned change (Change.as_json) of an application is carried out by a
    rollout."""
    if change["kind"] != "Application":
        return False
    if change["action"] == Action.CREATE:
        return True
    changed = change["action"] in (Action.CHANGE, Action.ADOPT)
    return changed and any(k in change["diff"] for k in ROLLED_OUT)


def rollouts_start(
    *,
    repository: GitRepository,
    plan: list[dict[str, Any]],
    commit: str,
    actor: AbstractBaseUser | None = None,
) -> list[str]:
    """Start a rollout of each application the applied plan created or changed; each such
    change of `plan` gets `rollout` (the operation's id) or `rollout_error` (why not, e.g.
    a rollout already in progress or a placement that chose no cluster). The problems, as
    lines for the sync's errors."""
    problems = []
    for change in plan:
        if not needs_rollout(change):
            continue
        application = Application.objects.filter(team=repository.team, name=change["name"]).first()
        if application is None:
            continue
        try:
            operation = rollout_start(
                application=application,
                actor=actor,
                reason=f"git-repository {repository.name} at {commit[:7]}",
            )
        except ValidationError as error:
            change["rollout_error"] = " ".join(error.messages)
            problems.append(f"Application {change['name']}: not rolled out: {error.messages[0]}")
            continue
        change["rollout"] = str(operation.pk)
    return problems
