"""Bad prices never reach the hourly computation, one bad batch does not stop the others,
and two computations of the same hour do not collide."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from clusters.models import Cluster
from costs import rollups, services
from costs.models import ClusterPricing, CostAllocation, RateCard
from costs.services import CostComputeIncomplete, cost_compute
from tests.cost.test_costs import HOUR, _fleet, _rows
from tests.factories import make_team


@pytest.mark.django_db
@pytest.mark.parametrize("price", ["1e400", "Infinity", "-Infinity", "NaN", "-0.5", "cheap", ""])
def test_a_rate_card_price_that_is_not_a_finite_non_negative_number_is_refused(
    price: str, team: Any, owner: Any
) -> None:
    body = {
        "name": "dc",
        "team": "payments",
        "valid_from": str(timezone.now().date()),
        "cpu_core_hour": "0.02",
        "ram_gb_hour": "0.002",
        "instance_prices": {"onprem.medium": price},
    }
    response = owner.api.post("/api/v1/rate-cards/", body, format="json")
    assert response.status_code == 400, response.content
    assert "onprem.medium" in response.content.decode()
    assert not RateCard.objects.exists()


@pytest.mark.django_db
def test_a_valid_instance_price_is_stored_as_a_plain_decimal() -> None:
    from costs.prices import instance_prices_clean

    assert instance_prices_clean({"m5.large": "0.096", " big ": "1e2", "free": 0}) == {
        "m5.large": "0.096",
        "big": "100",
        "free": "0",
    }


@pytest.mark.django_db
def test_a_price_stored_before_the_check_is_priced_by_resources_instead() -> None:
    # given an on-premises card whose stored instance price is Infinity (saved by an
    # older release, straight into the table)
    team = make_team()
    cluster = _fleet(team, name="dc-1")
    Cluster.objects.filter(pk=cluster.pk).update(provider="onprem")
    RateCard.objects.create(
        name="dc",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.02"),
        ram_gb_hour=D("0.002"),
        instance_prices={"r5.xlarge": "Infinity", "m5.large": "NaN"},
    )
    ClusterPricing.objects.create(cluster=cluster, valid_from=date(2026, 1, 1), rate_card="dc")

    cost_compute(hour=HOUR)

    # then both nodes are priced by resource: a 2 x 0.02 + 8 x 0.002 = 0.056,
    # b 4 x 0.02 + 32 x 0.002 = 0.144
    compute = sum(r.total_cost - r.storage_cost for r in _rows(cluster).values())
    assert compute == D("0.200")


@pytest.mark.django_db
def test_one_failing_batch_leaves_the_other_teams_priced(monkeypatch: Any) -> None:
    # given three clusters of three teams, one batch each, and the middle one's data
    # makes its pricing fail
    clusters = [_fleet(make_team(name=f"t{i}"), name=f"c-{i}") for i in range(3)]
    monkeypatch.setattr(services, "BATCH", 1)
    real = services.cluster_cost_hour

    def pricing(cluster: Any, *args: Any) -> Any:
        if cluster.name == "c-1":
            raise ArithmeticError("bad data in this cluster")
        return real(cluster, *args)

    monkeypatch.setattr(services, "cluster_cost_hour", pricing)

    # when the hour is computed, it reports the cluster it could not price
    with pytest.raises(CostComputeIncomplete, match="1 clusters not priced"):
        cost_compute(hour=HOUR)

    # and the clusters before and after it are priced
    assert _rows(clusters[0]) and _rows(clusters[2])
    assert not _rows(clusters[1])


@pytest.mark.django_db(transaction=True)
def test_two_computations_of_the_same_hour_do_not_collide() -> None:
    # the hourly run and a "compute now" of the same cluster, at the same moment
    cluster = _fleet(make_team(), name="eu-1")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def compute() -> None:
        try:
            start.wait()
            cost_compute(hour=HOUR, cluster_ids=[cluster.pk])
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=compute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    one_run = CostAllocation.objects.filter(cluster=cluster, hour=HOUR).count()
    cost_compute(hour=HOUR, cluster_ids=[cluster.pk])
    assert CostAllocation.objects.filter(cluster=cluster, hour=HOUR).count() == one_run > 0


@pytest.mark.django_db
def test_a_rollup_longer_than_400_days_or_past_10000_rows_is_refused(
    team: Any, viewer: Any, monkeypatch: Any
) -> None:
    _fleet(team, name="eu-1")
    cost_compute(hour=HOUR)
    since = (HOUR - timedelta(days=401)).isoformat()
    long = viewer.api.get("/api/v1/costs/", {"since": since, "until": HOUR.isoformat()})
    assert long.status_code == 400
    assert long.json()["error"]["fields"]["since"] == ["A rollup covers at most 400 days."]
    # within the span it answers, and with fewer rows allowed than it has, it says so
    params = {"group_by": "namespace", "since": (HOUR - timedelta(days=1)).isoformat()}
    assert viewer.api.get("/api/v1/costs/", params).status_code == 200
    monkeypatch.setattr(rollups, "MAX_ROWS", 1)
    many = viewer.api.get("/api/v1/costs/", params)
    assert many.status_code == 400
    assert "More than 1 rows" in many.json()["error"]["fields"]["group_by"][0]
