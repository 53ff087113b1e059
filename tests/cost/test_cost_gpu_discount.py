"""Discounts as OpenCost applies them (its node cost: (CPU + RAM) x (1 - discount) + GPU),
with Keelson's GPU discount apart. Every figure worked out by hand:

dc-gpu, on premises, priced by the rate card `lab`: 0.02/core-h, 0.005/GB-h, 2.00/GPU-h.
One node of 8 cores, 32 GiB and 1 GPU: 0.16 + 0.16 + 2.00 = 2.32/h, split by exactly
those prices (CPU 0.16, RAM 0.16, GPU 2.00).
  ml:  2 cores, 8 GiB, the GPU        web: 2 cores, 8 GiB
  idle: 4 cores, 16 GiB, no GPU

A. discount 10 %, GPU discount 25 %: 0.018/core-h, 0.0045/GB-h, 1.50/GPU-h.
   ml  0.036 + 0.036 + 1.50 = 1.572    web 0.036 + 0.036 = 0.072
   idle 0.072 + 0.072 = 0.144          total 1.788 = 0.32 x 0.9 + 2.00 x 0.75
B. discount 10 % alone (OpenCost: GPUs are not discounted): 2.00/GPU-h.
   ml  0.036 + 0.036 + 2.00 = 2.072    web 0.072, idle 0.144, total 2.288
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from clusters.models import ClusterInventory
from costs.models import ClusterPricing, CostAllocation, RateCard
from costs.services import cost_compute
from tests.cost.test_costs import _node
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


def _asks(namespace: str, cores: int, gib: int, gpu: int = 0) -> dict[str, Any]:
    return {
        "node": "g",
        "namespace": namespace,
        "cpu_millis": cores * 1000,
        "memory_bytes": gib * GIB,
        "gpu": gpu,
    }


def _hour(**discounts: D) -> dict[str, dict[str, D]]:
    team = make_team()
    cluster = make_cluster(team=team, name="dc-gpu", provider="onprem")
    RateCard.objects.create(
        name="lab",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.02"),
        ram_gb_hour=D("0.005"),
        gpu_hour=D("2.00"),
    )
    ClusterPricing.objects.create(
        cluster=cluster, valid_from=date(2026, 1, 1), rate_card="lab", **discounts
    )
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=HOUR,
        data={
            "nodes": [_node("g", "", 8, 32, gpu=1)],
            "allocations": [_asks("ml", 2, 8, gpu=1), _asks("web", 2, 8)],
        },
    )
    cost_compute(hour=HOUR)
    return {
        row.namespace: {
            "cpu": row.cpu_cost,
            "ram": row.ram_cost,
            "gpu": row.gpu_cost,
            "total": row.total_cost,
        }
        for row in CostAllocation.objects.filter(cluster=cluster, hour=HOUR)
    }


def test_the_gpu_discount_is_apart_from_the_cpu_and_ram_discount() -> None:
    rows = _hour(discount_percent=D(10), gpu_discount_percent=D(25))
    assert rows["ml"] == {
        "cpu": D("0.036"),
        "ram": D("0.036"),
        "gpu": D("1.5"),
        "total": D("1.572"),
    }
    assert rows["web"]["total"] == D("0.072")
    assert (rows["__idle__"]["cpu"], rows["__idle__"]["ram"]) == (D("0.072"), D("0.072"))
    assert rows["__idle__"]["gpu"] == 0
    assert sum(row["total"] for row in rows.values()) == D("1.788")
    facts = CostAllocation.objects.filter(namespace="ml").get().provenance
    assert (facts["discount_percent"], facts["gpu_discount_percent"]) == ("10", "25")


def test_the_discount_alone_leaves_gpus_at_their_price_as_opencost_does() -> None:
    rows = _hour(discount_percent=D(10))
    assert rows["ml"]["gpu"] == D("2")
    assert rows["ml"]["total"] == D("2.072")
    assert sum(row["total"] for row in rows.values()) == D("2.288")


def test_the_gpu_discount_is_set_through_the_api_and_the_page() -> None:
    team = make_team()
    make_cluster(team=team, name="gpu-1", provider="aws")
    admin = make_user()
    add_member(team=team, user=admin, role=Role.ADMIN)
    api = APIClient()
    api.force_authenticate(admin)
    today = datetime.now(UTC).date()
    body = {"cluster": "gpu-1", "valid_from": str(today), "gpu_discount_percent": "30"}
    created = api.post("/api/v1/cluster-pricing/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["gpu_discount_percent"] == "30.00"
    assert ClusterPricing.objects.get().discount_percent == 0  # CPU and RAM at list price
    too_much = api.post(
        "/api/v1/cluster-pricing/",
        {**body, "valid_from": str(today + timedelta(days=1)), "gpu_discount_percent": "101"},
        format="json",
    )
    assert too_much.status_code == 400
    page = Client()
    page.force_login(admin)
    posted = page.post(
        "/clusters/gpu-1/pricing/",
        {
            "valid_from": str(today + timedelta(days=2)),
            "discount_percent": "5",
            "gpu_discount_percent": "12.5",
            "spot_discount_percent": "60",
        },
    )
    assert posted.status_code == 302
    later = ClusterPricing.objects.get(valid_from=today + timedelta(days=2))
    assert (later.discount_percent, later.gpu_discount_percent) == (5, D("12.5"))
    card = page.get("/costs/clusters/gpu-1/").content.decode()
    assert "12.50 % off GPUs" in card and 'name="gpu_discount_percent"' in card
