"""Cost from a real cluster's inventory: requests per node and namespace, priced."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from kubernetes import client as k8s

from clusters.models import ClusterInventory
from clusters.services.collection import clusters_collect
from costs.models import CostAllocation
from costs.services import cost_compute
from localkube.env import LocalCluster
from tests.clusters.helpers import deploy_and_wait, register_local
from tests.cost.test_cost_minutes import next_hour
from tests.factories import make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def test_a_namespace_is_charged_for_what_its_pods_request(kube_cluster: LocalCluster) -> None:
    # given a deployment requesting 2 x 500m CPU and 2 x 256Mi
    api = kube_cluster.control_plane.api_client()
    core = k8s.CoreV1Api(api)
    namespace = deploy_and_wait(
        api, prefix="costs", name="priced", replicas=2, cpu="500m", memory="256Mi"
    )
    cluster = register_local(kube_cluster, team=make_team(), name="priced-1")
    try:
        # when collected and costed
        clusters_collect(cluster_ids=[cluster.pk])
        rows = ClusterInventory.objects.get(cluster=cluster).data["allocations"]
        mine = [r for r in rows if r["namespace"] == namespace]
        assert sum(r["cpu_millis"] for r in mine) == 1000
        assert sum(r["memory_bytes"] for r in mine) == 2 * 256 * 2**20
        assert all(r["node"].startswith("member-1-node-") for r in mine)
        cost_compute(cluster_ids=[cluster.pk], hour=next_hour())
        # then the namespace is charged one core-hour and half a GB-hour for the hour, at the
        # default unit prices (no list price for the local provider's nodes)
        charged = CostAllocation.objects.get(cluster=cluster, namespace=namespace)
        assert charged.cpu_core_hours == D(1)
        assert charged.ram_gb_hours == D("0.5")
        assert charged.cpu_cost == D("0.031611")
        assert charged.ram_cost == D("0.002119")  # 0.5 x 0.004237, rounded to the micro-unit
        idle = CostAllocation.objects.get(cluster=cluster, namespace="__idle__")
        assert idle.total_cost > 0
    finally:
        core.delete_namespace(namespace)
