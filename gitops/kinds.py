"""The cost and report kinds in the database: their state in the declared form
(gitops.declared) and applying a plan's change to them through the services the API and
pages call (costs.prices, costs.budgets, policies.services.reports)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.models import Team
from costs.budgets import budget_create, budget_delete, budget_update
from costs.models import Budget, RateCard
from costs.prices import rate_card_delete, rate_card_save
from gitops.declared import amount, rate_card_version, report_state
from gitops.documents import Desired
from gitops.models import GitRepository
from gitops.plan import Action, Change
from policies.models import ReportDefinition
from policies.services.reports import ReportSpec, report_definition_delete, report_definition_save


def rate_card_states(rows: QuerySet[RateCard]) -> dict[str, dict[str, Any]]:
    """Each card (all its versions, oldest first) by name."""
    states: dict[str, dict[str, Any]] = {}
    for card in rows.order_by("name", "valid_from"):
        versions = states.setdefault(card.name, {"versions": []})["versions"]
        versions.append(rate_card_version(card.__dict__))
    return states


def budget_state(budget: Budget) -> dict[str, Any]:
    return {
        "monthly_amount": amount(budget.monthly_amount, 2),
        "cluster_set": budget.cluster_set.name if budget.cluster_set else "",
    }


def report_definition_state(definition: ReportDefinition) -> dict[str, Any]:
    fields = ReportSpec.__dataclass_fields__
    return report_state(ReportSpec(**{key: getattr(definition, key) for key in fields}))


def _prices(version: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in version.items() if k != "valid_from"}
    return {"valid_from": date.fromisoformat(version["valid_from"]), **values}


def apply_rate_card(
    change: Change, item: Desired | None, team: Team, repository: GitRepository, mark: Any
) -> None:
    cards = RateCard.objects.filter(team=team, name=change.name)
    if change.action == Action.ORPHAN:
        cards.update(managed_by=None)
        return
    if change.action == Action.PRUNE:
        rate_card_delete(actor=None, team=team, name=change.name)
        return
    assert item is not None
    current = {
        v["valid_from"]: v for v in rate_card_states(cards).get(change.name, {}).get("versions", [])
    }
    declared = {v["valid_from"]: v for v in item.state["versions"]}
    for day in sorted(set(current) - set(declared)):
        rate_card_delete(
            actor=None, team=team, name=change.name, valid_from=date.fromisoformat(day)
        )
    for day, version in sorted(declared.items()):
        if current.get(day) != version:
            rate_card_save(actor=None, team=team, name=change.name, **_prices(version))
    RateCard.objects.filter(team=team, name=change.name).update(managed_by=mark)


def apply_budget(
    change: Change, item: Desired | None, team: Team, repository: GitRepository, mark: Any
) -> None:
    if change.action == Action.CREATE:
        assert item is not None
        budget = budget_create(actor=None, team=team, name=change.name, **item.state)
    else:
        budget = Budget.objects.get(team=team, name=change.name)
        if change.action == Action.PRUNE:
            budget_delete(actor=None, budget=budget)
            return
        if change.action == Action.ORPHAN:
            mark = None
        elif change.action == Action.CHANGE:
            assert item is not None
            budget_update(actor=None, budget=budget, **item.state)
    Budget.objects.filter(pk=budget.pk).update(managed_by=mark)


def apply_report_definition(
    change: Change, item: Desired | None, team: Team, repository: GitRepository, mark: Any
) -> None:
    definition = ReportDefinition.objects.filter(team=team, name=change.name).first()
    if change.action in (Action.CREATE, Action.CHANGE):
        assert item is not None
        spec = ReportSpec(name=change.name, **item.state)
        definition = report_definition_save(team=team, spec=spec, actor=None, definition=definition)
    elif change.action == Action.PRUNE:
        assert definition is not None
        report_definition_delete(definition=definition, actor=None)
        return
    elif change.action == Action.ORPHAN:
        mark = None
    if definition is None:
        raise ValidationError({"name": ["No such report definition."]})
    ReportDefinition.objects.filter(pk=definition.pk).update(managed_by=mark)
