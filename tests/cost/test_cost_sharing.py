"""Shared namespaces and a fixed overhead (OpenCost's shareNamespaces, sharedOverhead and
shareSplit), through the hourly computation; hand-computed.

One hour (2026-11-10 14:00 UTC) of dc-1, rate card 0.02/core-h and 0.005/GB-h, one node
of 8 cores and 32 GiB (0.32/h):
  kube-system 1 core, 2 GiB: 0.03      monitoring 1 core: 0.02
  shop  Deployment/web 2 cores, 4 GiB: 0.06; Deployment/api 1 core, 2 GiB: 0.03 (0.09)
  lab   Job/train 2 cores, 8 GiB: 0.08
  idle: 1 core 0.02 + 16 GiB 0.08 = 0.10 (idle is not a namespace: it neither gives nor
  receives). Total 0.32.
kube-system and monitoring shared, overhead 73/month = 0.10/h: 0.05 + 0.10 = 0.15 to share.
  weighted (shop 0.09, lab 0.08 of 0.17): shop 0.15 x 9/17 = 0.0794118, split over its
    rows by their cost: web 2/3 = 0.052941, api 1/3 = 0.026471; lab 0.15 x 8/17 = 0.070588.
    shop 0.169412, lab 0.150588, idle 0.10: 0.42 = 0.32 + the overhead 0.10.
  even: 0.075 each: web 0.05, api 0.025, lab 0.075; shop 0.165, lab 0.155.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import ClusterInventory
from costs.models import ClusterPricing, CostAllocation
from costs.services import cost_compute
from tests.cost.test_cost_aggregation import dc_cluster
from tests.cost.test_costs import _node
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


def _pods(namespace: str, controller: str, cpu: int, gib: int) -> dict[str, Any]:
    return {
        "node": "n",
        "namespace": namespace,
        "controller": controller,
        "labels": {},
        "cpu_millis": cpu * 1000,
        "memory_bytes": gib * GIB,
        "gpu": 0,
    }


def _cluster(allocations: list[dict[str, Any]], **pricing: Any) -> Any:
    cluster = dc_cluster(**pricing)
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=HOUR,
        data={"nodes": [_node("n", "", 8, 32)], "allocations": allocations},
    )
    cost_compute(hour=HOUR)
    return cluster


FLEET = [
    _pods("kube-system", "", 1, 2),
    _pods("monitoring", "DaemonSet/agent", 1, 0),
    _pods("shop", "Deployment/web", 2, 4),
    _pods("shop", "Deployment/api", 1, 2),
    _pods("lab", "Job/train", 2, 8),
]
SHARED = {"shared_namespaces": ["kube-system", "monitoring"], "shared_overhead_monthly": D(73)}


def _by_namespace(cluster: Any) -> dict[str, D]:
    rows = CostAllocation.objects.filter(cluster=cluster, hour=HOUR).values("namespace")
    return {r["namespace"]: r["total"] for r in rows.annotate(total=Sum("total_cost"))}


def _shared(cluster: Any, controller: str) -> D:
    row = CostAllocation.objects.get(cluster=cluster, hour=HOUR, controller=controller)
    return row.shared_cost


def test_weighted_by_each_namespaces_cost() -> None:
    cluster = _cluster(FLEET, **SHARED)
    assert _by_namespace(cluster) == {
        "shop": D("0.169412"),
        "lab": D("0.150588"),
        "__idle__": D("0.10"),
    }
    assert _shared(cluster, "Deployment/web") == D("0.052941")
    assert _shared(cluster, "Deployment/api") == D("0.026471")
    assert _shared(cluster, "Job/train") == D("0.070588")


def test_evenly() -> None:
    cluster = _cluster(FLEET, **SHARED, share_split="even")
    assert _by_namespace(cluster) == {"shop": D("0.165"), "lab": D("0.155"), "__idle__": D("0.10")}
    assert _shared(cluster, "Deployment/web") == D("0.05")


def test_with_no_namespace_to_receive_it_nothing_moves() -> None:
    cluster = _cluster(FLEET[:2], **SHARED)
    # kube-system 0.03, monitoring 0.02, idle 6 cores 0.12 + 30 GiB 0.15, overhead alone
    assert _by_namespace(cluster) == {
        "kube-system": D("0.03"),
        "monitoring": D("0.02"),
        "__idle__": D("0.27"),
        "__shared__": D("0.10"),
    }


def test_the_setting_is_validated_and_audited() -> None:
    team = make_team()
    cluster = make_cluster(team=team, name="eu-1")
    admin = make_user()
    add_member(team, admin, Role.ADMIN)
    client = APIClient()
    client.force_authenticate(admin)
    body = {"cluster": "eu-1", "valid_from": str(timezone.now().date()), "share_split": "even"}
    bad = client.post(
        "/api/v1/cluster-pricing/", {**body, "shared_namespaces": ["Kube System"]}, format="json"
    )
    assert bad.status_code == 400, bad.content
    assert "shared_namespaces" in bad.json()["error"]["fields"]
    good = client.post(
        "/api/v1/cluster-pricing/",
        {**body, "shared_namespaces": ["kube-system"], "shared_overhead_monthly": "100"},
        format="json",
    )
    assert good.status_code == 201, good.content
    pricing = ClusterPricing.objects.get(cluster=cluster)
    assert (pricing.shared_namespaces, pricing.share_split) == (["kube-system"], "even")
    audited = AuditEvent.objects.get(action="cluster.pricing.set")
    assert audited.detail["shared_namespaces"] == "['kube-system']"
