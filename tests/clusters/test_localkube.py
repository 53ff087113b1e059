"""The local Kubernetes environment: real kube-apiservers with simulated nodes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from localkube.env import LocalCluster
from tests.clusters.helpers import wait_for

pytestmark = pytest.mark.kube


@pytest.fixture
def core(kube_cluster: LocalCluster) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube_cluster.control_plane.api_client())


def test_namespace_created_and_read_back(core: k8s.CoreV1Api) -> None:
    name = f"keelson-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"owner": "keelson"}}})
    namespace = core.read_namespace(name)
    assert namespace.metadata.labels["owner"] == "keelson"
    assert namespace.status.phase == "Active"


def test_tls_is_verified_against_the_cluster_ca(kube_cluster: LocalCluster) -> None:
    configuration = k8s.Configuration()
    configuration.host = kube_cluster.control_plane.server
    configuration.verify_ssl = True  # the system CAs do not know this cluster
    configuration.retries = False
    with pytest.raises(ApiException, match="CERTIFICATE_VERIFY_FAILED"):
        k8s.VersionApi(k8s.ApiClient(configuration)).get_code()


def test_simulated_nodes_are_ready_with_capacity(core: k8s.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert len(nodes) == 2
    for node in nodes:
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True"
        assert node.status.capacity["cpu"] == "4"
        assert node.status.node_info.kubelet_version == "v1.20.2"


def test_deployment_pods_run_on_simulated_nodes(kube_cluster: LocalCluster) -> None:
    # given
    api = kube_cluster.control_plane.api_client()
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    namespace = f"apps-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    labels = {"app": "web"}
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    # when
    apps.create_namespaced_deployment(namespace, deployment)
    # then the real controllers and scheduler place pods the simulator runs
    wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace).status.available_replicas == 3,
        timeout=60,
        what="3 available replicas",
    )
    pods = core.list_namespaced_pod(namespace).items
    assert {pod.status.phase for pod in pods} == {"Running"}
    assert all(pod.spec.node_name.startswith("member-1-node-") for pod in pods)

    # when a pod crash-loops
    victim = pods[0].metadata.name
    kube_cluster.simulator.fail_pod(namespace, victim)  # type: ignore[union-attr]
    # then the deployment sees one fewer available replica
    wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace).status.available_replicas == 2,
        timeout=30,
        what="the failing pod to count as unavailable",
    )
    status = core.read_namespaced_pod(victim, namespace).status.container_statuses[0]
    assert status.state.waiting.reason == "CrashLoopBackOff"

    # when scaled down, deleted pods are finalized as a kubelet would
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    wait_for(
        lambda: len(core.list_namespaced_pod(namespace).items) == 1,
        timeout=60,
        what="pods to be removed",
    )


def test_a_node_that_stops_heartbeating_becomes_not_ready_and_tainted(
    kube_env: Any,
) -> None:
    # given a cluster of its own (this test breaks a node)
    cluster = kube_env.start_cluster(f"outage-{uuid.uuid4().hex[:4]}")
    core = k8s.CoreV1Api(cluster.control_plane.api_client())
    node = core.list_node().items[0].metadata.name
    try:
        # when
        cluster.simulator.fail_node(node)

        # then the real node-lifecycle controller reacts (grace period 12 s in tests)
        def not_ready() -> bool:
            current = core.read_node(node)
            ready = next(c for c in current.status.conditions if c.type == "Ready")
            taints = {t.key for t in current.spec.taints or []}
            return ready.status == "Unknown" and "node.kubernetes.io/unreachable" in taints

        wait_for(not_ready, timeout=90, what=f"{node} to be marked unreachable")
        # when it comes back
        cluster.simulator.recover_node(node)
        wait_for(
            lambda: (
                not any(
                    t.key == "node.kubernetes.io/unreachable"
                    for t in core.read_node(node).spec.taints or []
                )
            ),
            timeout=60,
            what=f"{node} to recover",
        )
    finally:
        kube_env.stop_cluster(cluster.name, remove_data=True)
