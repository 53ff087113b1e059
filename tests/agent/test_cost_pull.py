"""Cost of a pull cluster: priced from the inventory its agent's heartbeats carry, exactly
as a push cluster is from its collection (tests/cost/test_cost_kube.py)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from kubernetes import client as k8s

from accounts.models import Team
from clusters.choices import Provider
from costs.models import CostAllocation
from costs.services import cost_compute
from localkube.env import LocalCluster
from tests.agent.helpers import enrolled
from tests.clusters.helpers import deploy_and_wait
from tests.cost.test_cost_minutes import next_hour

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def test_a_pull_cluster_is_priced_from_its_heartbeats_inventory(
    asgi_server: str, kube_cluster: LocalCluster, team: Team, tmp_path: Path
) -> None:
    # given a deployment requesting 2 x 500m CPU and 2 x 256Mi, in a pull cluster whose
    # agent has sent its heartbeat
    api = kube_cluster.control_plane.api_client()
    namespace = deploy_and_wait(
        api, prefix="pullcost", name="priced", replicas=2, cpu="500m", memory="256Mi"
    )
    try:
        cluster, _ = enrolled(
            asgi_server, kube_cluster, tmp_path / "agent", team=team, provider=Provider.LOCAL
        )

        # when costed
        cost_compute(cluster_ids=[cluster.pk], hour=next_hour())

        # then the namespace is charged what a push cluster's would be: one core-hour and
        # half a GB-hour at the default unit prices, and the rest of the nodes is idle
        charged = CostAllocation.objects.get(cluster=cluster, namespace=namespace)
        assert charged.cpu_core_hours == D(1)
        assert charged.ram_gb_hours == D("0.5")
        assert charged.cpu_cost == D("0.031611")
        assert charged.ram_cost == D("0.002119")
        idle = CostAllocation.objects.get(cluster=cluster, namespace="__idle__")
        assert idle.total_cost > 0
    finally:
        k8s.CoreV1Api(api).delete_namespace(namespace)
