"""Inventory and health collection against real kube-apiservers with simulated nodes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes.utils import parse_quantity
from rest_framework.test import APIClient

from accounts.choices import Role
from clusters.models import Cluster, ClusterInventory, ClusterTransition, HealthRollup, HealthSample
from clusters.services.collection import clusters_collect
from clusters.services.history import health_rollup
from localkube import LocalKubeEnv
from localkube.env import LocalCluster, default_nodes
from tests.clusters.helpers import deploy_and_wait, register_local, wait_for
from tests.factories import add_member, make_team, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(scope="module")
def health_cluster(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """A cluster of its own: these tests stop its API server and fail its nodes."""
    local = kube_env.start_cluster("health-1", nodes=default_nodes("health-1", count=3))
    yield local
    kube_env.stop_cluster("health-1", remove_data=True)


def _all_nodes_ready(local: LocalCluster) -> None:
    core = k8s.CoreV1Api(local.control_plane.api_client())

    def ready() -> bool:
        nodes = core.list_node().items
        return len(nodes) == 3 and all(
            any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            for n in nodes
        )

    wait_for(ready, timeout=90, what="every node of health-1 to be Ready")


@pytest.fixture
def cluster(health_cluster: LocalCluster) -> Cluster:
    """Registered afresh for each test, once the previous test's failures have healed."""
    _all_nodes_ready(health_cluster)
    return register_local(health_cluster, team=make_team())


def _probe(cluster: Cluster) -> Cluster:
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    return cluster


def test_inventory_matches_what_the_api_server_holds(
    cluster: Cluster, health_cluster: LocalCluster
) -> None:
    # given a workload with requests
    api = health_cluster.control_plane.api_client()
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    namespace = deploy_and_wait(
        api, prefix="inv", name="web", replicas=3, cpu="250m", memory="64Mi"
    )
    # when
    cluster = _probe(cluster)
    # then the numbers are the API server's
    nodes = core.list_node().items
    pods = core.list_pod_for_all_namespaces().items
    live = [p for p in pods if p.status.phase in ("Pending", "Running")]
    assert cluster.status == "ready"
    assert cluster.kubernetes_version == "v1.20.2"
    assert cluster.node_count == len(nodes) == 3
    assert cluster.nodes_ready == 3
    assert cluster.capacity_cpu_millis == sum(
        int(parse_quantity(n.status.capacity["cpu"]) * 1000) for n in nodes
    )
    assert cluster.capacity_memory_bytes == sum(
        int(parse_quantity(n.status.capacity["memory"])) for n in nodes
    )
    assert cluster.allocatable_pods == sum(int(n.status.allocatable["pods"]) for n in nodes)
    assert cluster.requested_cpu_millis == sum(
        int(parse_quantity(c.resources.requests.get("cpu", "0")) * 1000)
        for p in live
        for c in p.spec.containers
        if c.resources.requests
    )
    assert cluster.requested_memory_bytes >= 3 * 64 * 1024 * 1024
    inventory = ClusterInventory.objects.get(cluster=cluster).data
    assert {n["name"] for n in inventory["nodes"]} == {n.metadata.name for n in nodes}
    assert {n["instance_type"] for n in inventory["nodes"]} == {"m5.xlarge"}
    assert {ns["name"] for ns in inventory["namespaces"]} == {
        ns.metadata.name for ns in core.list_namespace().items
    }
    assert inventory["pods_by_phase"]["Running"] == sum(
        1 for p in pods if p.status.phase == "Running"
    )
    assert inventory["workloads"]["deployments"]["total"] == len(
        apps.list_deployment_for_all_namespaces().items
    )
    assert HealthSample.objects.filter(cluster=cluster).count() == 1
    core.delete_namespace(namespace)


def test_stopped_api_server_goes_unreachable_and_comes_back_ready(
    cluster: Cluster, health_cluster: LocalCluster
) -> None:
    # given a Ready cluster
    assert _probe(cluster).status == "ready"
    plane = health_cluster.control_plane
    # when its API server stops
    plane.stop_component("kube-apiserver")
    try:
        # then two failed probes are tolerated (a blip), the third marks it Unreachable
        assert _probe(cluster).status == "ready"
        assert cluster.pending_status == "unreachable"
        assert _probe(cluster).status == "ready"
        cluster = _probe(cluster)
        assert cluster.status == "unreachable"
        assert cluster.status_reason == "ProbeFailed"
        assert "Cannot connect to" in cluster.status_message
    finally:
        plane.restart_apiserver()
    # and after the restart (its nodes re-posting their status: the node controller may
    # have marked them NotReady meanwhile) it comes back Ready after two good probes
    _all_nodes_ready(health_cluster)
    for _ in range(4):
        if _probe(cluster).status == "ready":
            break
    assert cluster.status == "ready"
    transitions = list(
        ClusterTransition.objects.filter(cluster=cluster)
        .order_by("at")
        .values_list("from_status", "to_status")
    )
    assert transitions == [("unknown", "ready"), ("ready", "unreachable"), ("unreachable", "ready")]


def test_a_failed_node_makes_the_cluster_degraded(
    cluster: Cluster, health_cluster: LocalCluster
) -> None:
    assert _probe(cluster).status == "ready"
    simulator = health_cluster.simulator
    assert simulator is not None
    core = k8s.CoreV1Api(health_cluster.control_plane.api_client())
    node = "health-1-node-2"

    def node_ready() -> bool:
        conditions = core.read_node(node).status.conditions
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    simulator.fail_node(node)
    try:
        # the real node-lifecycle controller marks it NotReady after its grace period
        wait_for(lambda: not node_ready(), timeout=60, what="the node to go NotReady")
        assert _probe(cluster).status == "ready"  # one observation is not enough
        cluster = _probe(cluster)
        assert cluster.status == "degraded"
        assert cluster.status_reason == "NodesNotReady"
        assert "2 of 3 nodes ready; not ready: health-1-node-2" in cluster.status_message
        assert cluster.nodes_ready == 2
    finally:
        simulator.recover_node(node)
    wait_for(node_ready, timeout=30, what="the node to be Ready again")
    _probe(cluster)
    assert _probe(cluster).status == "ready"


def test_history_rolls_up_and_is_served_for_charts(
    cluster: Cluster, health_cluster: LocalCluster
) -> None:
    # given three probes
    for _ in range(3):
        _probe(cluster)
    # when rolled up
    health_rollup()
    # then the hour bucket counts them
    hour = HealthRollup.objects.get(cluster=cluster, period="hour")
    assert hour.samples == 3
    assert hour.ready_samples == 3
    assert hour.nodes_total_max == 3
    # and rolling up again does not double count
    health_rollup()
    assert HealthRollup.objects.get(cluster=cluster, period="hour").samples == 3
    # and the API serves raw and hourly series
    user = make_user()
    add_member(cluster.team, user, Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)
    raw = client.get(f"/api/v1/clusters/{cluster.name}/health/").json()
    assert raw["resolution"] == "raw"
    assert [p["status"] for p in raw["points"]] == ["ready"] * 3
    since = (timezone.now() - timedelta(days=5)).isoformat()
    hourly = client.get(
        f"/api/v1/clusters/{cluster.name}/health/", {"since": since, "resolution": "hour"}
    ).json()
    assert hourly["points"][0]["ready_ratio"] == 1.0
    bad = client.get(f"/api/v1/clusters/{cluster.name}/health/", {"since": "yesterday"})
    assert bad.status_code == 400
    assert "ISO 8601" in bad.json()["error"]["message"]


@pytest.mark.django_db
def test_samples_are_stored_with_copy_exactly_as_given() -> None:
    from django.utils import timezone

    from clusters.models import HealthSample
    from clusters.services.history import samples_insert
    from tests.factories import make_cluster, make_team

    cluster = make_cluster(team=make_team())
    at = timezone.now().replace(microsecond=123456)
    given = [
        HealthSample(
            cluster_id=cluster.pk,
            at=at,
            status="ready",
            api_latency_ms=12.5,
            nodes_total=3,
            nodes_ready=2,
            pods_running=7,
            pods_failed=1,
            cpu_requested_millis=1500,
            memory_requested_bytes=3 * 2**30,
        ),
        HealthSample(cluster_id=cluster.pk, at=at, status="unreachable"),  # no latency: NULL
    ]
    assert samples_insert(given) == 2
    stored = list(HealthSample.objects.filter(cluster=cluster).order_by("id"))
    assert [(s.status, s.api_latency_ms, s.at) for s in stored] == [
        ("ready", 12.5, at),
        ("unreachable", None, at),
    ]
    assert (stored[0].nodes_ready, stored[0].memory_requested_bytes) == (2, 3 * 2**30)
