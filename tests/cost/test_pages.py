"""Budgets from the cost page: list, create, delete; admins only, audited (issue 19)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from costs.models import Budget
from tests.factories import Member, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def team() -> Team:
    return make_team(name="platform")


def test_admin_creates_and_deletes_a_budget(team: Team, owner: Member) -> None:
    # given a team admin
    client = owner.page
    assert "Create budget" in client.get("/costs/").content.decode()
    # when a budget is created from the page
    response = client.post(
        "/costs/budgets/",
        {"name": "platform-monthly", "team": "platform", "monthly_amount": "1500"},
    )
    # then it is stored, audited and listed with its currency
    assert response.status_code == 302 and response["Location"] == "/costs/#budgets"
    budget = Budget.objects.get(name="platform-monthly")
    assert (budget.team, budget.monthly_amount, budget.cluster_set) == (
        team,
        Decimal("1500.00"),
        None,
    )
    assert AuditEvent.objects.filter(action="budget.create").count() == 1
    page = client.get("/costs/").content.decode()
    assert "platform-monthly" in page and "1,500.00 USD" in page
    # and deleting it removes it, audited
    assert client.post("/costs/budgets/platform-monthly/delete/").status_code == 302
    assert not Budget.objects.exists()
    assert AuditEvent.objects.filter(action="budget.delete").count() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "b1", "monthly_amount": "-5"}, "monthly amount: The amount must be above 0"),
        ({"name": "b1", "monthly_amount": "lots"}, "Enter an amount"),
        ({"name": "Not A Slug", "monthly_amount": "5"}, '<li class="error">name: '),
        ({"name": "b1", "monthly_amount": "5", "cluster_set": "nope"}, "No such cluster set"),
    ],
)
def test_bad_budget_input_says_why_and_stores_nothing(
    owner: Member, fields: dict[str, str], message: str
) -> None:
    page = owner.page.post("/costs/budgets/", {"team": "platform", **fields}, follow=True)
    assert message in page.content.decode()
    assert not Budget.objects.exists() and not AuditEvent.objects.filter(action="budget.create")


def test_an_operator_cannot_manage_budgets(team: Team, operator: Member) -> None:
    Budget.objects.create(name="kept", team=team, monthly_amount=Decimal(10))
    client = operator.page
    page = client.get("/costs/").content.decode()
    assert "Create budget" not in page and "kept" in page  # listed, not editable
    created = client.post(
        "/costs/budgets/", {"name": "b", "team": "platform", "monthly_amount": "5"}
    )
    assert created.status_code == 403
    assert client.post("/costs/budgets/kept/delete/").status_code == 403
    assert list(Budget.objects.values_list("name", flat=True)) == ["kept"]


def test_another_teams_budget_is_not_found(team: Team, outsider: Member) -> None:
    Budget.objects.create(name="theirs", team=team, monthly_amount=Decimal(10))
    client = outsider.page
    assert client.post("/costs/budgets/theirs/delete/").status_code == 404
    assert (
        client.post(
            "/costs/budgets/", {"name": "b", "team": "platform", "monthly_amount": "5"}
        ).status_code
        == 403
    )
    assert Budget.objects.count() == 1
