"""What a repository owns in the database, and applying a plan to it through the same
service functions the API calls (so every change is validated and audited as theirs)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import Team
from applications.models import Application
from applications.rollout import application_delete_start
from applications.services import application_create, application_update, application_version_add
from clusters.models import Cluster, ClusterSet
from clusters.services.lifecycle import cluster_set_delete, cluster_set_save
from gitops.documents import Desired
from gitops.models import GitRepository
from gitops.plan import Action, Change
from policies.models import Policy
from policies.services.policies import PolicySpec, policy_create, policy_delete, policy_update


def marker(repository: GitRepository, commit: str) -> dict[str, Any]:
    return {"repository": repository.pk, "name": repository.name, "commit": commit}


def _owned_applications(repository: GitRepository) -> Any:
    return Application.objects.filter(
        managed_by__repository=repository.pk, managed_by__pruning__isnull=True
    )


def _owned_policies(repository: GitRepository) -> Any:
    return Policy.objects.filter(managed_by__repository=repository.pk)


def _owned_sets(repository: GitRepository) -> Any:
    return ClusterSet.objects.filter(managed_by__repository=repository.pk)


def cluster_set_state(cluster_set: ClusterSet) -> dict[str, Any]:
    return {
        "description": cluster_set.description,
        "selector": cluster_set.selector,
        "members": sorted(m.name for m in cluster_set.members.all()),
    }


def application_state(application: Application) -> dict[str, Any]:
    latest = application.versions.values_list("manifests", flat=True).first() or ""
    return {
        "namespace": application.namespace,
        "description": application.description,
        "manifests": latest,
        "placement": dict(application.placement.spec),
        "overrides": list(application.overrides),
        "rollout": dict(application.rollout),
    }


def policy_state(policy: Policy) -> dict[str, Any]:
    state = asdict(PolicySpec.of(policy))
    del state["name"], state["pss_version"]
    return state


def owned_state(repository: GitRepository) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object the repository owns, in the form the repository declares them."""
    owned: dict[tuple[str, str], dict[str, Any]] = {}
    for cluster_set in _owned_sets(repository).prefetch_related("members"):
        owned[("ClusterSet", cluster_set.name)] = cluster_set_state(cluster_set)
    for application in _owned_applications(repository).select_related("placement"):
        owned[("Application", application.name)] = application_state(application)
    for policy in _owned_policies(repository).prefetch_related("rules", "cluster_sets"):
        owned[("Policy", policy.name)] = policy_state(policy)
    return owned


def conflicts(repository: GitRepository, desired: list[Desired]) -> list[str]:
    """Declared objects that exist but are not this repository's: a sync never takes over
    an object made in the API, a page or another repository."""
    errors = []
    names = [d.name for d in desired if d.kind == "ClusterSet"]
    for cluster_set in ClusterSet.objects.filter(name__in=names).exclude(
        managed_by__repository=repository.pk
    ):
        item = next(d for d in desired if d.kind == "ClusterSet" and d.name == cluster_set.name)
        errors.append(
            f"{item.file}:{item.line}: ClusterSet {item.name} exists and is not managed by "
            "this repository"
        )
    names = [d.name for d in desired if d.kind == "Application"]
    for application in Application.objects.filter(name__in=names).exclude(
        pk__in=_owned_applications(repository).values("pk")
    ):
        item = next(d for d in desired if d.kind == "Application" and d.name == application.name)
        errors.append(
            f"{item.file}:{item.line}: Application {item.name} exists and is not managed by "
            "this repository"
        )
    names = [d.name for d in desired if d.kind == "Policy"]
    for policy in Policy.objects.filter(team=repository.team, name__in=names).exclude(
        managed_by__repository=repository.pk
    ):
        item = next(d for d in desired if d.kind == "Policy" and d.name == policy.name)
        errors.append(
            f"{item.file}:{item.line}: Policy {item.name} exists and is not managed by "
            "this repository"
        )
    return errors


def _apply_application(
    change: Change,
    item: Desired | None,
    team: Team,
    repository: GitRepository,
    mark: dict[str, Any],
) -> None:
    if change.action == Action.CREATE:
        assert item is not None
        state = dict(item.state)
        application = application_create(actor=None, team=team, name=item.name, **state)
        Application.objects.filter(pk=application.pk).update(managed_by=mark)
        return
    application = _owned_applications(repository).get(name=change.name)
    if change.action == Action.CHANGE:
        assert item is not None
        if "namespace" in change.diff:
            raise ValidationError(
                {"spec.namespace": ["cannot change; declare a new application instead"]}
            )
        if "manifests" in change.diff:
            application_version_add(
                actor=None, application=application, manifests=item.state["manifests"]
            )
        fields = {k: item.state[k] for k in change.diff if k not in ("namespace", "manifests")}
        if fields:
            application_update(actor=None, application=application, changes=fields)
    elif change.action == Action.PRUNE:
        # Removed from its clusters, then deleted, by an Operation; until it ends the
        # marker says so, so that the next sync neither owns nor prunes it again.
        application_delete_start(application=application, actor=None)
        Application.objects.filter(pk=application.pk).update(managed_by={**mark, "pruning": True})
        return
    elif change.action == Action.ORPHAN:
        Application.objects.filter(pk=application.pk).update(managed_by=None)
        return
    Application.objects.filter(pk=application.pk).update(managed_by=mark)


def _members(team: Team, names: list[str]) -> list[Cluster]:
    found = list(Cluster.objects.filter(team=team, name__in=names))
    missing = sorted(set(names) - {c.name for c in found})
    if missing:
        raise ValidationError(
            {"spec.members": [f"No such cluster in the team: {', '.join(missing)}."]}
        )
    return found


def _apply_cluster_set(
    change: Change,
    item: Desired | None,
    team: Team,
    repository: GitRepository,
    mark: dict[str, Any],
) -> None:
    if change.action in (Action.CREATE, Action.CHANGE):
        assert item is not None
        if change.action == Action.CREATE:
            cluster_set = ClusterSet(team=team, name=item.name)
        else:
            cluster_set = _owned_sets(repository).get(name=change.name)
        cluster_set.description = item.state["description"]
        cluster_set.selector = item.state["selector"]
        members = _members(team, item.state["members"])
        cluster_set = cluster_set_save(actor=None, cluster_set=cluster_set, members=members)
    else:
        cluster_set = _owned_sets(repository).get(name=change.name)
        if change.action == Action.PRUNE:
            cluster_set_delete(actor=None, cluster_set=cluster_set)
            return
        if change.action == Action.ORPHAN:
            ClusterSet.objects.filter(pk=cluster_set.pk).update(managed_by=None)
            return
    ClusterSet.objects.filter(pk=cluster_set.pk).update(managed_by=mark)


def _apply_policy(
    change: Change,
    item: Desired | None,
    team: Team,
    repository: GitRepository,
    mark: dict[str, Any],
) -> None:
    if change.action == Action.CREATE:
        assert item is not None
        policy = policy_create(team=team, spec=PolicySpec(name=item.name, **item.state), actor=None)
        Policy.objects.filter(pk=policy.pk).update(managed_by=mark)
        return
    policy = _owned_policies(repository).get(name=change.name)
    if change.action == Action.CHANGE:
        assert item is not None
        spec = PolicySpec(name=item.name, pss_version=policy.pss_version, **item.state)
        policy_update(policy=policy, spec=spec, actor=None)
    elif change.action == Action.PRUNE:
        policy_delete(policy=policy, actor=None)
        Policy.all_objects.filter(pk=policy.pk).update(managed_by=None)
        return
    elif change.action == Action.ORPHAN:
        Policy.objects.filter(pk=policy.pk).update(managed_by=None)
        return
    Policy.objects.filter(pk=policy.pk).update(managed_by=mark)


APPLY = {
    "ClusterSet": _apply_cluster_set,
    "Application": _apply_application,
    "Policy": _apply_policy,
}


def apply_plan(
    *, repository: GitRepository, commit: str, changes: list[Change], desired: list[Desired]
) -> None:
    """Apply every change (call inside one transaction: any error leaves nothing applied).
    A failing change raises ValidationError with the file and line of its document."""
    by_key = {(d.kind, d.name): d for d in desired}
    mark = marker(repository, commit)
    team = repository.team
    for change in changes:
        item = by_key.get((change.kind, change.name))
        apply = APPLY[change.kind]
        try:
            apply(change, item, team, repository, mark)
        except ValidationError as error:
            where = f"{change.file}:{change.line}: " if change.file else ""
            messages = (
                [f"{k}: {'; '.join(v)}" for k, v in error.message_dict.items()]
                if hasattr(error, "error_dict")
                else error.messages
            )
            raise ValidationError(
                [f"{where}{change.kind} {change.name}: {m}" for m in messages]
            ) from None
