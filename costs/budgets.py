"""Budgets: create, change and delete, validated, saved and audited in one call, for the pages and
the API's BudgetViewSet alike."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Team
from audit.services import audit_record
from clusters.models import ClusterSet
from costs.models import Budget

MAX_AMOUNT = Decimal("999999999999.99")  # max_digits=14, decimal_places=2


def _amount(monthly_amount: str | Decimal) -> Decimal:
    try:
        amount = Decimal(str(monthly_amount).strip())
    except InvalidOperation:
        raise ValidationError({"monthly_amount": "Enter an amount, e.g. 1500.00."}) from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        raise ValidationError({"monthly_amount": "The amount must be above 0."})
    return amount.quantize(Decimal("0.01"))


def _cluster_set(team: Team, cluster_set: str | ClusterSet | None) -> ClusterSet | None:
    """The team's cluster set, by name or row; None for none."""
    found_set = None
    if isinstance(cluster_set, ClusterSet):
        found_set = cluster_set if cluster_set.team_id == team.pk else None
    elif cluster_set:
        found_set = ClusterSet.objects.filter(team=team, name=cluster_set).first()
    if cluster_set and found_set is None:
        raise ValidationError({"cluster_set": "No such cluster set in the team."})
    return found_set


def _detail(budget: Budget) -> dict[str, str]:
    return {
        "monthly_amount": str(budget.monthly_amount),
        "cluster_set": budget.cluster_set.name if budget.cluster_set else "",
    }


@transaction.atomic
def budget_create(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    monthly_amount: str | Decimal,
    cluster_set: str | ClusterSet | None = None,
) -> Budget:
    """A monthly budget for `team` (or one of its cluster sets, by name or row: either way
    it must be the team's). The caller checked that `actor` administers `team`."""
    budget = Budget(
        name=name.strip(),
        team=team,
        cluster_set=_cluster_set(team, cluster_set),
        monthly_amount=_amount(monthly_amount),
    )
    budget.full_clean()  # name: a slug, unique
    budget.save()
    audit_record(
        actor=actor, action="budget.create", target=budget, team=team, detail=_detail(budget)
    )
    return budget


@transaction.atomic
def budget_update(
    *,
    actor: AbstractBaseUser | None,
    budget: Budget,
    monthly_amount: str | Decimal,
    cluster_set: str | ClusterSet | None = None,
) -> Budget:
    """Change a budget's amount and cluster set (GitOps declares both; the API and pages
    create and delete budgets)."""
    budget.cluster_set = _cluster_set(budget.team, cluster_set)
    budget.monthly_amount = _amount(monthly_amount)
    budget.full_clean()
    budget.save(update_fields=["cluster_set", "monthly_amount"])
    audit_record(
        actor=actor, action="budget.update", target=budget, team=budget.team, detail=_detail(budget)
    )
    return budget


@transaction.atomic
def budget_delete(*, actor: AbstractBaseUser | None, budget: Budget) -> None:
    audit_record(actor=actor, action="budget.delete", target=budget, team=budget.team)
    budget.delete()
