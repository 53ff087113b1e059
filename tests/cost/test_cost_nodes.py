"""Spot nodes by their provider's labels and load balancers by provider, hand-computed.

One hour (2026-11-10 14:00 UTC) of a self-managed AWS cluster in us-east-1 (no control-
plane fee), two m5.large nodes at the list price 0.096/h, no pods (all idle):
  a: on demand: 0.096.
  b: labelled `eks.amazonaws.com/capacityType: SPOT`: without a pricing row, the default
     spot discount of 60 %: 0.096 x 0.4 = 0.0384. With the cluster priced at a 70 % spot
     discount: 0.096 x 0.3 = 0.0288.
  web has two Services of type LoadBalancer: 2 x 0.0225 (AWS NLB) = 0.045.
  Total 0.096 + 0.0384 + 0.045 = 0.1794 (0.1698 at 70 %).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from django.db.models import Sum

from clusters.models import ClusterInventory
from costs.models import ClusterPricing, CostAllocation
from costs.services import cost_compute
from kube.inventory import _node, inventory_from_json, is_spot
from tests.cost.test_costs import _node as node_row
from tests.factories import make_cluster, make_team

HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("labels", "spot"),
    [
        ({"eks.amazonaws.com/capacityType": "SPOT"}, True),
        ({"eks.amazonaws.com/capacityType": "ON_DEMAND"}, False),
        ({"cloud.google.com/gke-spot": "true"}, True),
        ({"cloud.google.com/gke-preemptible": "true"}, True),
        ({"kubernetes.azure.com/scalesetpriority": "spot"}, True),
        ({"kubernetes.azure.com/scalesetpriority": "regular"}, False),
        ({}, False),
    ],
)
def test_spot_is_read_from_each_providers_node_labels(labels: dict[str, str], spot: bool) -> None:
    assert is_spot(labels) is spot
    raw = {"metadata": {"name": "n", "labels": labels}, "status": {}}
    assert _node(raw)["spot"] is spot


def _cluster() -> Any:
    cluster = make_cluster(
        team=make_team(),
        name="spotty-1",
        provider="aws",
        region="us-east-1",
        kubernetes_version="v1.29.1",
        api_server_url="https://10.0.0.10:6443",
    )
    spot = {**node_row("b", "m5.large", 2, 8), "spot": True}
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=HOUR,
        data={
            "nodes": [node_row("a", "m5.large", 2, 8), spot],
            "allocations": [],
            "load_balancers": {"web": 2},
        },
    )
    return cluster


def _total(cluster: Any) -> D:
    rows = CostAllocation.objects.filter(cluster=cluster, hour=HOUR)
    return rows.aggregate(total=Sum("total_cost"))["total"]


@pytest.mark.django_db
def test_a_spot_node_pays_its_price_less_the_spot_discount() -> None:
    cluster = _cluster()
    cost_compute(hour=HOUR)
    idle = CostAllocation.objects.get(cluster=cluster, hour=HOUR, namespace="__idle__")
    assert idle.total_cost == D("0.1344")  # 0.096 + 0.0384
    web = CostAllocation.objects.get(cluster=cluster, hour=HOUR, namespace="web")
    assert (web.load_balancer_cost, web.total_cost) == (D("0.045"), D("0.045"))
    assert _total(cluster) == D("0.1794")
    # each row says how its hour was priced: list prices, one node spot at 0.4 of its price
    assert (idle.estimated, idle.provenance) == (
        False,
        {"nodes": {"list": 2}, "spot_nodes": 1, "spot_price_factor": "0.4"},
    )

    ClusterPricing.objects.create(
        cluster=cluster, valid_from=date(2026, 11, 1), spot_discount_percent=D(70)
    )
    cost_compute(hour=HOUR)
    assert _total(cluster) == D("0.1698")
    web = CostAllocation.objects.get(cluster=cluster, hour=HOUR, namespace="web")
    assert web.provenance == {
        "nodes": {"list": 2},
        "pricing_from": "2026-11-01",
        "spot_nodes": 1,
        "spot_price_factor": "0.3",
    }


@pytest.mark.django_db
def test_a_cluster_wide_spot_flag_does_not_discount_spot_nodes_twice() -> None:
    # spot=True prices every node as spot at 60 %: a 0.0384, b 0.0384 (not 0.01536)
    cluster = _cluster()
    ClusterPricing.objects.create(cluster=cluster, valid_from=date(2026, 11, 1), spot=True)
    cost_compute(hour=HOUR)
    assert _total(cluster) == D("0.0768") + D("0.045")


def test_an_agents_load_balancer_counts_are_validated() -> None:
    assert inventory_from_json({"load_balancers": {"web": 2}}).load_balancers == {"web": 2}
    with pytest.raises(ValueError, match="load_balancers"):
        inventory_from_json({"load_balancers": {"web": -1}})
    with pytest.raises(ValueError, match="usage"):
        inventory_from_json(
            {"allocations": [{**_asks(), "cpu_usage_millis": "lots"}]}  # not an integer
        )


def _asks() -> dict[str, Any]:
    return {"node": "a", "namespace": "web", "cpu_millis": 1, "memory_bytes": 1, "gpu": 0}
