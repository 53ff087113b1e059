"""Cost grouped by controller, pod label, namespace label and two keys at once, with
filters on each, through the hourly computation and /api/v1/costs/ (hand-computed).

One hour (2026-11-10 14:00 UTC) of dc-1, priced by a rate card at 0.02/core-h and
0.005/GB-h; one node of 8 cores and 32 GiB: 0.16 + 0.16 = 0.32/h. Namespaces:
shop {env: prod, team: retail}, lab {env: dev, team: retail}, ops {env: prod,
team: platform}.
  shop  Deployment/web {app: web}   2 cores, 4 GiB: 0.04 + 0.02 = 0.06
  shop  Deployment/api {app: api}   1 core,  2 GiB: 0.02 + 0.01 = 0.03
  lab   Job/train      {app: train} 2 cores, 8 GiB: 0.04 + 0.04 = 0.08
  ops   (bare pod)     {app: web}   1 core,  0    : 0.02
  idle (not shared): CPU 2 cores 0.04 + RAM 18 GiB 0.09 = 0.13. Total 0.32.
By pod_label:app: web 0.06 + 0.02 = 0.08, train 0.08, api 0.03, (none) 0.13 (idle).
By controller: Deployment/web 0.06, Deployment/api 0.03, Job/train 0.08,
  "" 0.02 + 0.13 = 0.15.
By namespace_label:team,namespace_label:env: retail / prod 0.09, retail / dev 0.08,
  platform / prod 0.02, (none) / (none) 0.13.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from rest_framework.test import APIClient

from clusters.models import ClusterInventory
from costs.models import ClusterPricing, RateCard
from costs.services import cost_compute
from kube.inventory import controller_of
from tests.cost.test_costs import _node
from tests.factories import make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)
WINDOW = {"since": HOUR.isoformat(), "until": (HOUR + timedelta(hours=1)).isoformat()}


def _pods(namespace: str, controller: str, app: str, cpu: int, gib: int) -> dict[str, Any]:
    return {
        "node": "n",
        "namespace": namespace,
        "controller": controller,
        "labels": {"app": app},
        "cpu_millis": cpu * 1000,
        "memory_bytes": gib * GIB,
        "gpu": 0,
    }


def dc_cluster(**pricing: Any) -> Any:
    """dc-1, priced from 2026-01-01 by the rate card `dc` (0.02/core-h, 0.005/GB-h)."""
    team = make_team()
    cluster = make_cluster(team=team, name="dc-1", provider="onprem")
    RateCard.objects.create(
        name="dc",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.02"),
        ram_gb_hour=D("0.005"),
    )
    ClusterPricing.objects.create(
        cluster=cluster, valid_from=date(2026, 1, 1), rate_card="dc", **pricing
    )
    return cluster


@pytest.fixture
def admin() -> Any:
    cluster = dc_cluster()
    namespaces = {
        "shop": {"env": "prod", "team": "retail"},
        "lab": {"env": "dev", "team": "retail"},
        "ops": {"env": "prod", "team": "platform"},
    }
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=HOUR,
        data={
            "nodes": [_node("n", "", 8, 32)],
            "namespaces": [
                {"name": n, "phase": "Active", "labels": v} for n, v in namespaces.items()
            ],
            "allocations": [
                _pods("shop", "Deployment/web", "web", 2, 4),
                _pods("shop", "Deployment/api", "api", 1, 2),
                _pods("lab", "Job/train", "train", 2, 8),
                _pods("ops", "", "web", 1, 0),
            ],
        },
    )
    cost_compute(hour=HOUR)
    return make_user(superuser=True)


def _costs(user: Any, **params: str) -> tuple[int, dict[str, Any]]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/costs/", {**WINDOW, **params})
    return response.status_code, response.json()


def _totals(user: Any, **params: str) -> dict[str, D]:
    status, body = _costs(user, **params)
    assert status == 200, body
    return {row["group"]: D(str(row["total_cost"])) for row in body["rows"]}


def test_by_pod_label(admin: Any) -> None:
    assert _totals(admin, group_by="pod_label:app") == {
        "web": D("0.08"),
        "train": D("0.08"),
        "api": D("0.03"),
        "(none)": D("0.13"),
    }


def test_by_controller(admin: Any) -> None:
    assert _totals(admin, group_by="controller") == {
        "Deployment/web": D("0.06"),
        "Deployment/api": D("0.03"),
        "Job/train": D("0.08"),
        "": D("0.15"),
    }


def test_by_two_namespace_labels_at_once(admin: Any) -> None:
    status, body = _costs(admin, group_by="namespace_label:team,namespace_label:env")
    assert status == 200
    assert {row["group"]: D(str(row["total_cost"])) for row in body["rows"]} == {
        "retail / prod": D("0.09"),
        "retail / dev": D("0.08"),
        "platform / prod": D("0.02"),
        "(none) / (none)": D("0.13"),
    }
    assert ["retail", "prod"] in [row["groups"] for row in body["rows"]]
    assert D(str(body["total"])) == D("0.32")


def test_grouped_by_cluster_a_row_says_how_it_was_priced(admin: Any) -> None:
    status, body = _costs(admin, group_by="cluster")
    assert status == 200
    (row,) = body["rows"]
    assert row["estimated"] is False
    assert row["provenance"] == [
        {
            "nodes": {"rate_card": 1},
            "rate_card": "dc",
            "rate_card_version": "2026-01-01",
            "pricing_from": "2026-01-01",
        }
    ]


def test_filters_on_each_dimension(admin: Any) -> None:
    # prod namespaces by app: shop's web and api, ops' web
    assert _totals(admin, group_by="pod_label:app", **{"namespace_label:env": "prod"}) == {
        "web": D("0.08"),
        "api": D("0.03"),
    }
    assert _totals(admin, group_by="namespace", controller="Deployment/web") == {"shop": D("0.06")}
    assert _totals(admin, group_by="controller", **{"pod_label:app": "web"}) == {
        "Deployment/web": D("0.06"),
        "": D("0.02"),
    }


@pytest.mark.parametrize("group_by", ["team,namespace,cluster", "pod_label:", "owner"])
def test_a_bad_grouping_is_a_400(admin: Any, group_by: str) -> None:
    status, body = _costs(admin, group_by=group_by)
    assert status == 400
    assert "group_by" in body["error"]["fields"]


@pytest.mark.parametrize(
    ("owners", "labels", "controller"),
    [
        (
            [{"kind": "ReplicaSet", "name": "web-5d9f8", "controller": True}],
            {"pod-template-hash": "5d9f8"},
            "Deployment/web",
        ),
        ([{"kind": "ReplicaSet", "name": "loose", "controller": True}], {}, "ReplicaSet/loose"),
        ([{"kind": "StatefulSet", "name": "db", "controller": True}], {}, "StatefulSet/db"),
        ([{"kind": "Job", "name": "train", "controller": True}], {}, "Job/train"),
        ([{"kind": "ConfigMap", "name": "x"}], {}, ""),  # an owner that is not a controller
        ([], {}, ""),
    ],
)
def test_a_pods_controller_is_named_as_opencost_names_it(
    owners: list[dict[str, Any]], labels: dict[str, str], controller: str
) -> None:
    assert controller_of({"ownerReferences": owners, "labels": labels}) == controller
