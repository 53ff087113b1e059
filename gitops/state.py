"""What a repository owns in the database, and applying a plan to it through the same
service functions the API calls (so every change is validated and audited as theirs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.models import Team
from applications.models import Application
from applications.rollout import application_delete_start
from applications.services import application_create, application_update, application_version_add
from audit.services import audit_record
from clusters.models import Cluster, ClusterSet
from clusters.services.lifecycle import cluster_set_delete, cluster_set_save
from costs.models import Budget, RateCard
from gitops.documents import Desired
from gitops.kinds import (
    apply_budget,
    apply_rate_card,
    apply_report_definition,
    budget_state,
    rate_card_states,
    report_definition_state,
)
from gitops.models import GitRepository
from gitops.plan import Action, Change
from policies.models import Policy, ReportDefinition
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


def _each(state: Callable[[Any], dict[str, Any]]) -> Callable[[QuerySet[Any]], dict[str, Any]]:
    return lambda rows: {row.name: state(row) for row in rows}


@dataclass(frozen=True)
class Rows:
    """Where a kind's objects are: `named` every row a declared name could collide with
    (the scope of the kind's names), `owned` the repository's, `states` their declared form
    by name."""

    named: Callable[[GitRepository], QuerySet[Any]]
    owned: Callable[[GitRepository], QuerySet[Any]]
    states: Callable[[QuerySet[Any]], dict[str, dict[str, Any]]]


def _marked(model: Any) -> Callable[[GitRepository], QuerySet[Any]]:
    return lambda repository: model.objects.filter(managed_by__repository=repository.pk)


ROWS = {
    "ClusterSet": Rows(
        lambda r: ClusterSet.objects.all(),
        _owned_sets,
        lambda rows: _each(cluster_set_state)(rows.prefetch_related("members")),
    ),
    "RateCard": Rows(lambda r: RateCard.objects.all(), _marked(RateCard), rate_card_states),
    "Application": Rows(
        lambda r: Application.objects.all(),
        _owned_applications,
        lambda rows: _each(application_state)(rows.select_related("placement")),
    ),
    "Budget": Rows(
        lambda r: Budget.objects.all(),
        _marked(Budget),
        lambda rows: _each(budget_state)(rows.select_related("cluster_set")),
    ),
    "Policy": Rows(
        lambda r: Policy.objects.filter(team=r.team),
        _owned_policies,
        lambda rows: _each(policy_state)(rows.prefetch_related("rules", "cluster_sets")),
    ),
    "ReportDefinition": Rows(
        lambda r: ReportDefinition.objects.filter(team=r.team),
        _marked(ReportDefinition),
        _each(report_definition_state),
    ),
}


def owned_state(repository: GitRepository) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object the repository owns, in the form the repository declares them."""
    owned: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, rows in ROWS.items():
        for name, state in rows.states(rows.owned(repository)).items():
            owned[(kind, name)] = state
    return owned


def _unowned(repository: GitRepository, kind: str, names: list[str]) -> QuerySet[Any]:
    """The team's objects of these names that no repository owns (made in the API or a
    page, or released): what a repository with `adopt` takes over."""
    rows = ROWS[kind].named(repository)
    return rows.filter(team=repository.team, name__in=names, managed_by__isnull=True)


def adoptable_state(
    repository: GitRepository, desired: list[Desired]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The state of each declared object the repository would adopt (none without `adopt`)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if not repository.adopt:
        return found
    for kind, rows in ROWS.items():
        if names := [d.name for d in desired if d.kind == kind]:
            unowned = rows.states(_unowned(repository, kind, names))
            found.update({(kind, name): state for name, state in unowned.items()})
    return found


def conflicts(repository: GitRepository, desired: list[Desired]) -> list[str]:
    """Declared objects that exist but are not this repository's: a sync never takes over
    an object made in the API, a page or another repository, unless the repository adopts
    the team's unowned ones."""
    errors = []
    for kind, rows in ROWS.items():
        items = {d.name: d for d in desired if d.kind == kind}
        if not items:
            continue
        taken = set(rows.named(repository).filter(name__in=items).values_list("name", flat=True))
        taken -= set(rows.owned(repository).filter(name__in=items).values_list("name", flat=True))
        free = set(_unowned(repository, kind, sorted(taken)).values_list("name", flat=True))
        if repository.adopt:
            taken -= free
        for name in sorted(taken):
            hint = "; adopt: true on the repository takes it over" if name in free else ""
            errors.append(
                f"{items[name].file}:{items[name].line}: {kind} {name} exists and is not "
                f"managed by this repository{hint}"
            )
    return errors


def release(repository: GitRepository) -> None:
    """Every object the repository declared becomes editable again."""
    managers: list[Any] = [Application.objects, Policy.all_objects, ClusterSet.objects]
    managers += [RateCard.objects, Budget.objects, ReportDefinition.objects]
    for manager in managers:
        manager.filter(managed_by__repository=repository.pk).update(managed_by=None)


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
    "RateCard": apply_rate_card,
    "Budget": apply_budget,
    "ReportDefinition": apply_report_definition,
}


def _adopt(change: Change, repository: GitRepository, mark: dict[str, Any]) -> Change:
    """Take an unowned object over (audited); then it is changed as declared, like one of
    the repository's own."""
    rows = _unowned(repository, change.kind, [change.name])
    target = rows.first()
    if target is None:
        raise ValidationError({"name": ["No longer exists unowned; sync again."]})
    rows.update(managed_by=mark)
    audit_record(
        actor=None,
        action="gitrepository.adopt",
        target=target,
        team=repository.team,
        detail={"kind": change.kind, "name": change.name, "repository": repository.name},
    )
    return replace(change, action=Action.CHANGE if change.diff else Action.UNCHANGED)


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
            if change.action == Action.ADOPT:
                change = _adopt(change, repository, mark)
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
