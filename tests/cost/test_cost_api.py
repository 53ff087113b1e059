"""Cost API and pages: rollups as JSON and CSV, dated pricing rules, permissions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import Role
from costs.models import ClusterPricing
from costs.services import cost_compute
from tests.cost.test_costs import _fleet
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def priced() -> dict[Any, Any]:
    team = make_team(name="payments")
    _fleet(team, name="eu-1")
    now = timezone.now()
    for hours in range(3):
        cost_compute(hour=now - timedelta(hours=hours))
    users: dict[Any, Any] = {}
    for role in (Role.VIEWER, Role.ADMIN):
        users[role] = make_user()
        add_member(team, users[role], role)
    return {"team": team, **users}


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_rollup_json_and_csv(priced: dict[Any, Any]) -> None:
    client = _api(priced[Role.VIEWER])
    body = client.get("/api/v1/costs/", {"group_by": "namespace", "range": "24h"}).json()
    groups = {row["group"] for row in body["rows"]}
    assert groups == {"web", "batch", "__idle__", "__control_plane__"}
    assert abs(float(body["total"]) - sum(float(r["total_cost"]) for r in body["rows"])) < 0.01
    csv = client.get("/api/v1/costs/", {"group_by": "namespace", "range": "24h", "export": "csv"})
    assert csv["Content-Type"] == "text/csv"
    lines = csv.content.decode().splitlines()
    assert lines[0].startswith("namespace,total_cost,cpu_cost")
    assert len(lines) == 5
    bad = client.get("/api/v1/costs/", {"group_by": "colour"})
    assert bad.status_code == 400
    assert "group_by must be one of" in bad.json()["error"]["message"]
    outsider = _api(make_user()).get("/api/v1/costs/", {"range": "24h"}).json()
    assert outsider["rows"] == []


def test_pricing_changes_only_from_today_on_and_by_admins(priced: dict[Any, Any]) -> None:
    today = timezone.now().date()
    body = {
        "cluster": "eu-1",
        "valid_from": str(today - timedelta(days=1)),
        "discount_percent": "10",
    }
    admin = _api(priced[Role.ADMIN])
    past = admin.post("/api/v1/cluster-pricing/", body, format="json")
    assert past.status_code == 400
    assert "never in the past" in past.json()["error"]["message"]
    viewer = _api(priced[Role.VIEWER]).post(
        "/api/v1/cluster-pricing/", {**body, "valid_from": str(today)}, format="json"
    )
    assert viewer.status_code == 403
    ok = admin.post(
        "/api/v1/cluster-pricing/",
        {**body, "valid_from": str(today + timedelta(days=3))},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    assert ClusterPricing.objects.get().discount_percent == 10
    too_much = admin.post(
        "/api/v1/cluster-pricing/",
        {**body, "valid_from": str(today + timedelta(days=4)), "discount_percent": "120"},
        format="json",
    )
    assert too_much.status_code == 400


def test_budget_status_and_pages(priced: dict[Any, Any]) -> None:
    admin = _api(priced[Role.ADMIN])
    created = admin.post(
        "/api/v1/budgets/",
        {"name": "payments", "team": "payments", "monthly_amount": "50.00"},
        format="json",
    )
    assert created.status_code == 201, created.content
    status = admin.get("/api/v1/budgets/payments/").json()["status"]
    assert float(status["spent"]) > 0 and float(status["forecast"]) >= float(status["spent"])
    page = Client()
    page.force_login(priced[Role.VIEWER])
    explorer = page.get("/costs/", {"group_by": "namespace"}).content.decode()
    assert "batch" in explorer and "payments" in explorer
    assert '"days": [' in explorer
    assert "payments" in page.get("/costs/chargeback/").content.decode()
    # The cluster page loads its cost card from the costs app (htmx, like compliance).
    detail = page.get("/clusters/eu-1/").content.decode()
    assert 'hx-get="/costs/clusters/eu-1/"' in detail
    card = page.get("/costs/clusters/eu-1/").content.decode()
    assert "Cost this month" in card and "batch" in card
    assert "Change pricing" not in card  # a viewer cannot change it
    bad = page.get("/costs/", {"group_by": "colour"})
    assert bad.status_code == 400


def test_pricing_form_on_the_cluster_page(priced: dict[Any, Any]) -> None:
    today = timezone.now().date()
    viewer = Client()
    viewer.force_login(priced[Role.VIEWER])
    assert viewer.post("/clusters/eu-1/pricing/", {"valid_from": str(today)}).status_code == 403
    admin = Client()
    admin.force_login(priced[Role.ADMIN])
    past = admin.post(
        "/clusters/eu-1/pricing/",
        {
            "valid_from": str(today - timedelta(days=2)),
            "discount_percent": "5",
            "spot_discount_percent": "60",
        },
        follow=True,
    )
    assert "never in the past" in past.content.decode()
    assert not ClusterPricing.objects.exists()
    admin.post(
        "/clusters/eu-1/pricing/",
        {
            "valid_from": str(today),
            "discount_percent": "5",
            "spot_discount_percent": "60",
            "share_idle": "on",
        },
    )
    pricing = ClusterPricing.objects.get()
    assert (pricing.discount_percent, pricing.share_idle) == (5, True)


def test_rate_card_page_adds_versions(priced: dict[Any, Any]) -> None:
    from costs.models import RateCard

    admin = Client()
    admin.force_login(priced[Role.ADMIN])
    today = timezone.now().date()
    form = {
        "name": "dc-east",
        "team": "payments",
        "valid_from": str(today),
        "cpu_core_hour": "0.02",
        "ram_gb_hour": "0.003",
        "gpu_hour": "0",
        "storage_gb_month": "0.05",
        "instance_prices": "onprem.medium=0.21\n",
    }
    assert admin.post("/costs/rate-cards/", form).status_code == 302
    later = {**form, "valid_from": str(today + timedelta(days=30)), "cpu_core_hour": "0.025"}
    assert admin.post("/costs/rate-cards/", later).status_code == 302
    assert list(
        RateCard.objects.order_by("valid_from").values_list("cpu_core_hour", flat=True)
    ) == [
        Decimal("0.02"),
        Decimal("0.025"),
    ]
    assert RateCard.objects.first().instance_prices == {"onprem.medium": "0.21"}  # type: ignore[union-attr]
    past = admin.post("/costs/rate-cards/", {**form, "valid_from": str(today - timedelta(days=1))})
    assert past.status_code == 400 and "never in the past" in past.content.decode()
    bad = admin.post("/costs/rate-cards/", {**form, "instance_prices": "onprem.medium=cheap"})
    assert "Line 1: write instance-type=price." in bad.content.decode()
    viewer = Client()
    viewer.force_login(priced[Role.VIEWER])
    assert viewer.post("/costs/rate-cards/", {**form, "name": "x"}).status_code == 403
    assert "dc-east" in viewer.get("/costs/rate-cards/").content.decode()


def test_rate_cards_and_list_prices_never_change_the_past_through_the_api(
    priced: dict[Any, Any],
) -> None:
    yesterday = str(timezone.now().date() - timedelta(days=1))
    admin = _api(priced[Role.ADMIN])
    card = admin.post(
        "/api/v1/rate-cards/",
        {
            "name": "dc",
            "team": "payments",
            "valid_from": yesterday,
            "cpu_core_hour": "0.02",
            "ram_gb_hour": "0.002",
        },
        format="json",
    )
    assert card.status_code == 400
    assert "never in the past" in card.json()["error"]["message"]
    root = _api(make_user(superuser=True))
    price = root.post(
        "/api/v1/instance-prices/",
        {
            "provider": "aws",
            "region": "eu-west-1",
            "instance_type": "m5.large",
            "hourly": "0.5",
            "valid_from": yesterday,
        },
        format="json",
    )
    assert price.status_code == 400
    today = str(timezone.now().date())
    ok = root.post(
        "/api/v1/instance-prices/",
        {
            "provider": "aws",
            "region": "eu-west-1",
            "instance_type": "m5.large",
            "hourly": "0.5",
            "valid_from": today,
        },
        format="json",
    )
    assert ok.status_code == 201, ok.content
