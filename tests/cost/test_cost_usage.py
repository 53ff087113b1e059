"""Usage from metrics.k8s.io, through a real API server's aggregation layer.

The cluster serves `metrics.k8s.io/v1beta1` from the localkube metrics-server stand-in
(an APIService the kube-apiserver proxies to); the collector finds it in discovery, reads
pod usage, and the hour charges each pod max(request, usage) per resource.

Hand computation (two m5.xlarge nodes of the `local` provider: no list price, so priced
at OpenCost's default unit prices, 0.031611/core-h and 0.004237/GB-h, scale 1):
  heavy: 2 pods x (500m, 256Mi); each uses 150 % of its CPU request (750m) and 50 % of
    its memory (128Mi). Charged per pod max(request, usage): 750m and 256Mi, so
    1.5 core-h and 0.5 GB-h: CPU 1.5 x 0.031611 = 0.0474165 -> 0.047417, RAM
    0.5 x 0.004237 = 0.0021185 -> 0.002119. Efficiency CPU 1.5 / 1 = 1.5, RAM 0.25 / 0.5
    = 0.5.
  light: 1 pod x (1, 1Gi) using 25 % of each: charged its requests, 1 core-h (0.031611)
    and 1 GB-h (0.004237). Efficiency 0.25 and 0.25.
  Cluster efficiency: CPU (1.5 + 0.25) / (1 + 1) = 0.875; RAM (0.25 + 0.25) /
    (0.5 + 1) = 0.3333.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest
from kubernetes import client as k8s
from rest_framework.test import APIClient

from clusters.models import ClusterInventory
from clusters.services.collection import clusters_collect
from costs.models import CostAllocation
from costs.services import cost_compute
from localkube.env import LocalCluster, LocalKubeEnv
from localkube.metrics import Usage
from tests.clusters.helpers import deploy_and_wait, register_local
from tests.cost.test_cost_minutes import next_hour
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(scope="module")
def metered(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    cluster = kube_env.start_cluster("metered-1", metrics=True)
    yield cluster
    kube_env.stop_cluster("metered-1", remove_data=True)


def _costs(user: Any, group_by: str) -> dict[str, dict[str, Any]]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/costs/", {"group_by": group_by, "range": "24h"})
    assert response.status_code == 200, response.content
    return {row["group"]: row for row in response.json()["rows"]}


def test_pods_are_charged_the_larger_of_request_and_usage(metered: LocalCluster) -> None:
    api = metered.control_plane.api_client()
    assert metered.metrics is not None
    heavy = deploy_and_wait(api, prefix="heavy", name="h", replicas=2, cpu="500m", memory="256Mi")
    light = deploy_and_wait(api, prefix="light", name="l", replicas=1, cpu="1", memory="1Gi")
    metered.metrics.namespaces[heavy] = Usage(cpu=D("1.5"), memory=D("0.5"))
    metered.metrics.namespaces[light] = Usage(cpu=D("0.25"), memory=D("0.25"))
    k8s.CoreV1Api(api).create_namespaced_service(
        heavy,
        {
            "metadata": {"name": "front"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "h"}},
        },
    )
    team = make_team()
    cluster = register_local(metered, team=team, name="metered-1")
    try:
        clusters_collect(cluster_ids=[cluster.pk])
        data = ClusterInventory.objects.get(cluster=cluster).data
        assert data["usage"] is True
        assert data["load_balancers"] == {heavy: 1}  # the `local` provider prices them at 0
        rows = [r for r in data["allocations"] if r["namespace"] == heavy]
        assert {(r["controller"], str(r["labels"])) for r in rows} == {
            ("Deployment/h", "{'app': 'h'}")
        }
        assert sum(r["cpu_usage_millis"] for r in rows) == 1500
        assert sum(r["memory_usage_bytes"] for r in rows) == 256 * 2**20
        assert sum(r["cpu_charged_millis"] for r in rows) == 1500
        assert sum(r["memory_charged_bytes"] for r in rows) == 512 * 2**20

        cost_compute(cluster_ids=[cluster.pk], hour=next_hour())
        # the pods' row (their load balancer has a row of its own, controller "")
        charged = CostAllocation.objects.get(
            cluster=cluster, namespace=heavy, controller="Deployment/h"
        )
        assert charged.labels == {"app": "h"}
        # no list price for the local provider's nodes: priced by estimate, and marked so
        assert (charged.estimated, charged.provenance) == (
            True,
            {"nodes": {"estimate": 2}},
        )  # pod-template-hash is the ReplicaSet's, not kept
        assert (charged.cpu_core_hours, charged.ram_gb_hours) == (D("1.5"), D("0.5"))
        assert (charged.cpu_cost, charged.ram_cost) == (D("0.047417"), D("0.002119"))
        assert charged.cpu_usage_core_hours == D("1.5")
        assert charged.ram_usage_gb_hours == D("0.25")
        charged = CostAllocation.objects.get(cluster=cluster, namespace=light)
        assert (charged.cpu_cost, charged.ram_cost) == (D("0.031611"), D("0.004237"))

        admin = make_user(superuser=True)
        by_namespace = _costs(admin, "namespace")
        assert D(str(by_namespace[heavy]["cpu_efficiency"])) == D("1.5")
        assert D(str(by_namespace[heavy]["ram_efficiency"])) == D("0.5")
        assert D(str(by_namespace[light]["cpu_efficiency"])) == D("0.25")
        assert by_namespace["__idle__"]["cpu_efficiency"] is None  # nothing measured
        by_cluster = _costs(admin, "cluster")["metered-1"]
        assert D(str(by_cluster["cpu_efficiency"])) == D("0.875")
        assert D(str(by_cluster["ram_efficiency"])) == D("0.3333")
    finally:
        core = k8s.CoreV1Api(api)
        core.delete_namespace(heavy)
        core.delete_namespace(light)


def test_without_metrics_usage_is_unknown_and_requests_are_charged(
    kube_cluster: LocalCluster,
) -> None:
    # member-1 serves no metrics.k8s.io: the inventory says so, efficiency is unknown
    api = kube_cluster.control_plane.api_client()
    namespace = deploy_and_wait(api, prefix="plain", name="p", replicas=1, cpu="1", memory="1Gi")
    cluster = register_local(kube_cluster, team=make_team(), name="plain-1")
    try:
        clusters_collect(cluster_ids=[cluster.pk])
        assert ClusterInventory.objects.get(cluster=cluster).data["usage"] is False
        cost_compute(cluster_ids=[cluster.pk], hour=next_hour())
        row = CostAllocation.objects.get(cluster=cluster, namespace=namespace)
        assert (row.cpu_core_hours, row.cpu_usage_core_hours) == (D(1), None)
        assert row.cpu_request_core_hours == D(1)
        got = _costs(make_user(superuser=True), "namespace")[namespace]
        assert got["cpu_efficiency"] is None
    finally:
        k8s.CoreV1Api(api).delete_namespace(namespace)
