"""Budgets from the page and from the API go through one service (issue 22): the same row,
the same audit event, the same refusals of bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import ClusterSet
from costs.models import Budget
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin() -> Any:
    team = make_team(name="platform")
    ClusterSet.objects.create(name="web", team=team)
    user = make_user()
    add_member(team, user, Role.ADMIN)
    return user


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _row(name: str) -> tuple[Any, ...]:
    return Budget.objects.values_list("team__name", "cluster_set__name", "monthly_amount").get(
        name=name
    )


def _event(action: str, name: str) -> tuple[Any, ...]:
    return AuditEvent.objects.values_list("actor_name", "team__name", "target_type", "detail").get(
        action=action, target_repr=name
    )


def test_page_and_api_create_the_same_budget_and_event(admin: Any) -> None:
    web = ClusterSet.objects.get(name="web")
    # when the same budget over the web set is created from the page and from the API
    page = _page(admin).post(
        "/costs/budgets/",
        {"name": "from-page", "team": "platform", "monthly_amount": "1500", "cluster_set": "web"},
    )
    api = _api(admin).post(
        "/api/v1/budgets/",
        {"name": "from-api", "team": "platform", "monthly_amount": "1500", "cluster_set": web.pk},
        format="json",
    )
    assert page.status_code == 302 and api.status_code == 201, api.content
    # then both rows hold the same, and both events say the same
    expected_row = ("platform", "web", Decimal("1500.00"))
    assert _row("from-page") == _row("from-api") == expected_row
    expected_event = (
        admin.username,
        "platform",
        "cost.budget",
        {"monthly_amount": "1500.00", "cluster_set": "web"},
    )
    assert _event("budget.create", "from-page") == expected_event
    assert _event("budget.create", "from-api") == expected_event


def test_page_and_api_delete_alike(admin: Any) -> None:
    for name in ("a", "b"):
        assert (
            _api(admin)
            .post(
                "/api/v1/budgets/",
                {"name": name, "team": "platform", "monthly_amount": "10"},
                format="json",
            )
            .status_code
            == 201
        )
    assert _page(admin).post("/costs/budgets/a/delete/").status_code == 302
    assert _api(admin).delete("/api/v1/budgets/b/").status_code == 204
    assert not Budget.objects.exists()
    assert _event("budget.delete", "a")[:3] == _event("budget.delete", "b")[:3]
    assert _event("budget.delete", "b")[:3] == (admin.username, "platform", "cost.budget")


@pytest.mark.parametrize("amount", ["0", "-5"])
def test_an_amount_the_page_refuses_the_api_refuses_too(admin: Any, amount: str) -> None:
    page = _page(admin).post(
        "/costs/budgets/",
        {"name": "b1", "team": "platform", "monthly_amount": amount},
        follow=True,
    )
    api = _api(admin).post(
        "/api/v1/budgets/",
        {"name": "b1", "team": "platform", "monthly_amount": amount},
        format="json",
    )
    assert "The amount must be above 0" in page.content.decode()
    assert api.status_code == 400
    assert api.json()["error"]["fields"] == {"monthly_amount": ["The amount must be above 0."]}
    assert not Budget.objects.exists()
    assert not AuditEvent.objects.filter(action="budget.create").exists()


def test_another_teams_cluster_set_is_refused_alike(admin: Any) -> None:
    # given a set of a team the admin also administers, and one of the admin's own team
    other = make_team(name="other")
    add_member(other, admin, Role.ADMIN)
    theirs = ClusterSet.objects.create(name="theirs", team=other)
    # when a platform budget is put over the other team's set, from the page and the API
    page = _page(admin).post(
        "/costs/budgets/",
        {"name": "b1", "team": "platform", "monthly_amount": "5", "cluster_set": "theirs"},
        follow=True,
    )
    api = _api(admin).post(
        "/api/v1/budgets/",
        {"name": "b1", "team": "platform", "monthly_amount": "5", "cluster_set": theirs.pk},
        format="json",
    )
    # then both refuse with the same words and store nothing
    assert "No such cluster set in the team." in page.content.decode()
    assert api.status_code == 400
    assert api.json()["error"]["fields"] == {"cluster_set": ["No such cluster set in the team."]}
    assert not Budget.objects.exists()
    assert not AuditEvent.objects.filter(action="budget.create").exists()
