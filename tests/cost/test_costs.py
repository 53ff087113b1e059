"""Costs computed from inventories with list prices, dated price changes, rollups, budgets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from accounts.choices import Role
from clusters.models import ClusterInventory
from costs.allocation import Allocation
from costs.models import Budget, BudgetAlert, ClusterPricing, CostAllocation, RateCard
from costs.rollups import cost_rollup, cost_total
from costs.services import (
    allocation_lines,
    allocations_replace,
    budgets_check,
    cluster_unit_prices,
    cost_compute,
)
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


def _node(name: str, instance_type: str, cpu: int, gib: int, gpu: int = 0) -> dict[str, Any]:
    capacity = {"cpu_millis": cpu * 1000, "memory_bytes": gib * GIB, "gpu": gpu, "pods": 110}
    return {
        "name": name,
        "ready": True,
        "instance_type": instance_type,
        "region": "",
        "capacity": capacity,
        "allocatable": capacity,
    }


def _fleet(team: Any, name: str = "eu-1", **fields: Any) -> Any:
    # An EKS cluster (the version string EKS builds carry): it pays the managed fee.
    fields.setdefault("kubernetes_version", "v1.29.1-eks-508b6b3")
    cluster = make_cluster(
        team=team, name=name, provider="aws", region="eu-west-1", environment="prod", **fields
    )
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=HOUR,
        data={
            "nodes": [_node("a", "m5.large", 2, 8), _node("b", "r5.xlarge", 4, 32)],
            "allocations": [
                {
                    "node": "a",
                    "namespace": "web",
                    "cpu_millis": 1000,
                    "memory_bytes": 4 * GIB,
                    "gpu": 0,
                },
                {
                    "node": "b",
                    "namespace": "batch",
                    "cpu_millis": 2000,
                    "memory_bytes": 16 * GIB,
                    "gpu": 0,
                },
            ],
            "storage_bytes": {"web": 100 * GIB},
        },
    )
    return cluster


def _rows(cluster: Any, hour: datetime = HOUR) -> dict[str, CostAllocation]:
    return {r.namespace: r for r in CostAllocation.objects.filter(cluster=cluster, hour=hour)}


def test_an_hour_is_priced_from_list_prices_and_every_node_hour_is_accounted_for() -> None:
    cluster = _fleet(make_team())
    cost_compute(hour=HOUR)
    rows = _rows(cluster)
    assert set(rows) == {"web", "batch", "__idle__", "__control_plane__"}
    # eu-west-1 list prices: m5.large 0.096 x 1.07, r5.xlarge 0.252 x 1.07
    nodes = D("0.10272") + D("0.26964")
    control_plane = D(73) / D(730)
    storage = D(100) * D("0.10") / D(730)
    total = sum(r.total_cost for r in rows.values())
    assert abs(total - (nodes + control_plane + storage)) < D("0.00001")
    assert rows["web"].storage_cost == (storage).quantize(D("0.000001"))
    # computing the hour again replaces it, never adds to it
    cost_compute(hour=HOUR + timedelta(minutes=30))
    assert CostAllocation.objects.filter(cluster=cluster).count() == 4


def test_allocations_are_written_as_given_with_text_escaped_and_money_rounded() -> None:
    # Regions and environments are free text: COPY's separators must survive the trip.
    # `allocate` rounds what it computes; what reaches the write finer than the column's
    # six places is rounded by PostgreSQL, a tie away from zero.
    cluster = make_cluster(
        team=make_team(), provider="onprem", region="dc\\1\tnorth", environment="a\nb"
    )
    allocations = {
        "web": Allocation(
            "web",
            cpu_cost=D("0.1234565"),  # a tie at the 7th place: away from zero
            ram_cost=D("0.0000015"),
            cpu_core_hours=D("1.5"),
            ram_gb_hours=D(3 * 2**20) / D(2**30),
            extra={"storage": D("0.000137")},
        )
    }
    lines = allocation_lines(cluster, HOUR, allocations)
    allocations_replace(cluster_ids=[cluster.pk], hour=HOUR, lines=lines)
    allocations_replace(cluster_ids=[cluster.pk], hour=HOUR, lines=lines)  # replaces
    stored = CostAllocation.objects.get(cluster=cluster, hour=HOUR)
    assert (stored.region, stored.environment) == ("dc\\1\tnorth", "a\nb")
    assert (stored.cpu_cost, stored.ram_cost) == (D("0.123457"), D("0.000002"))
    # 0.1234565 + 0.0000015 + 0.000137, summed before rounding
    assert stored.total_cost == D("0.123595")
    assert (stored.storage_cost, stored.ram_gb_hours) == (D("0.000137"), D("0.002930"))
    assert stored.team_id == cluster.team_id and stored.cpu_usage_core_hours is None


def test_a_price_change_applies_from_its_date_only() -> None:
    cluster = _fleet(make_team())
    day_before = HOUR - timedelta(days=1)
    cost_compute(hour=day_before)
    before = sum(r.total_cost for r in _rows(cluster, day_before).values())
    # a 50 % discount from HOUR's date on (and no control-plane fee)
    ClusterPricing.objects.create(
        cluster=cluster, valid_from=HOUR.date(), discount_percent=50, control_plane_monthly=0
    )
    cost_compute(hour=HOUR)
    cost_compute(hour=day_before)  # recomputing the past does not apply it
    after = sum(r.total_cost for r in _rows(cluster).values())
    assert sum(r.total_cost for r in _rows(cluster, day_before).values()) == before
    nodes_half = (D("0.10272") + D("0.26964")) / 2
    assert abs(after - nodes_half - D(100) * D("0.10") / D(730)) < D("0.00001")


def test_an_onprem_rate_card_prices_by_resource() -> None:
    team = make_team()
    cluster = _fleet(team, name="dc-1")
    cluster.provider = "onprem"
    cluster.save()
    RateCard.objects.create(
        name="dc",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.02"),
        ram_gb_hour=D("0.002"),
        instance_prices={"r5.xlarge": "0.10"},
    )
    ClusterPricing.objects.create(cluster=cluster, valid_from=date(2026, 1, 1), rate_card="dc")
    cost_compute(hour=HOUR)
    rows = _rows(cluster)
    # node a by resource: 2 x 0.02 + 8 x 0.002 = 0.056; node b from the card: 0.10
    compute = sum(r.total_cost - r.storage_cost for r in rows.values())
    assert compute == D("0.156")
    assert "__control_plane__" not in rows  # no fee for on-premises
    prices = cluster_unit_prices(cluster, HOUR)
    assert prices is not None and prices["cpu_core_hour"] > 0


def test_rollups_equal_the_sum_of_their_parts() -> None:
    team = make_team()
    _fleet(team, name="eu-1", labels={"tier": "web"})
    _fleet(team, name="eu-2", labels={"tier": "batch"})
    for hours in range(30):
        cost_compute(hour=HOUR + timedelta(hours=hours))
    user = make_user()
    add_member(team, user, Role.VIEWER)
    since, until = HOUR, HOUR + timedelta(days=3)
    total = cost_total(user=user, since=since, until=until)
    for group_by in ("cluster", "namespace", "provider", "team", "label:tier"):
        rows = cost_rollup(user=user, since=since, until=until, group_by=group_by).rows
        assert abs(sum(r["total_cost"] for r in rows) - total) <= D("0.01") * len(rows), group_by
    by_day = cost_rollup(user=user, since=since, until=until, group_by="cluster", period="day").rows
    assert {r["period"].date() for r in by_day} == {HOUR.date(), HOUR.date() + timedelta(days=1)}
    assert {
        r["group"]
        for r in cost_rollup(user=user, since=since, until=until, group_by="label:tier").rows
    } == {"web", "batch"}
    # outsiders see nothing
    assert cost_total(user=make_user(), since=since, until=until) == 0


def test_a_budget_alerts_once_when_the_forecast_exceeds_it() -> None:
    team = make_team()
    _fleet(team)
    now = HOUR + timedelta(hours=5)
    for hours in range(6):
        cost_compute(hour=HOUR + timedelta(hours=hours))
    Budget.objects.create(name="small", team=team, monthly_amount=D("100.00"))
    Budget.objects.create(name="large", team=team, monthly_amount=D("100000.00"))
    alerts = budgets_check(now=now)
    assert [a.budget.name for a in alerts] == ["small"]
    assert alerts[0].forecast > D("100")
    assert budgets_check(now=now) == []  # once a month
    assert BudgetAlert.objects.count() == 1


def test_idle_can_be_shared_back_to_namespaces() -> None:
    cluster = _fleet(make_team())
    cost_compute(hour=HOUR)
    before = _rows(cluster)
    ClusterPricing.objects.create(cluster=cluster, valid_from=HOUR.date(), share_idle=True)
    cost_compute(hour=HOUR)
    after = _rows(cluster)
    assert "__idle__" not in after
    moved = sum(r.total_cost for r in after.values()) - sum(r.total_cost for r in before.values())
    assert abs(moved) < D("0.00001")
    assert after["batch"].total_cost > before["batch"].total_cost
