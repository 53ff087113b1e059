"""The `capi` provider against a real kube-apiserver with the Cluster API CRDs, where the
test plays the Cluster API controllers (status, kubeconfig Secret, finalizers)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.models import Cluster
from clusters.providers.base import ClusterSpec
from clusters.services.provisioning import (
    cluster_create,
    cluster_destroy,
    cluster_lifecycle_run,
    cluster_scale,
    cluster_upgrade,
)
from localkube import LocalKubeEnv
from localkube.env import LocalCluster
from operations.models import Operation
from tests.clusters.capi_env import install_crds, resource
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_team

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def management(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    local = kube_env.start_cluster("capi-mgmt", controllers=False, simulate=False)
    install_crds(local.control_plane.api_client())
    yield local
    kube_env.stop_cluster("capi-mgmt", remove_data=True)


def _in_background(operation: Operation) -> threading.Thread:
    thread = threading.Thread(
        target=cluster_lifecycle_run, kwargs={"operation_id": operation.pk}, daemon=True
    )
    thread.start()
    return thread


def _finish(thread: threading.Thread, operation: Operation) -> Operation:
    thread.join(timeout=60)
    assert not thread.is_alive(), "the provider did not finish"
    operation.refresh_from_db()
    assert operation.state == "succeeded", (operation.error, operation.message)
    return operation


def _get(api: k8s.ApiClient, api_version: str, kind: str, name: str) -> Callable[[], Any]:
    def read() -> Any:
        try:
            return resource(api, api_version, kind).get(name=name, namespace="fleet").to_dict()
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    return read


def _patch(api: k8s.ApiClient, api_version: str, kind: str, name: str, body: Any) -> None:
    resource(api, api_version, kind).patch(
        name=name, namespace="fleet", body=body, content_type=MERGE
    )


def test_eks_cluster_lifecycle_through_cluster_api(
    settings: Any, management: LocalCluster, kube_cluster: LocalCluster
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    team = make_team()
    register_local(management, team=team, name="mgmt")
    api = management.control_plane.api_client()
    spec = ClusterSpec.from_json(
        {
            "provider": "capi",
            "region": "eu-west-1",
            "kubernetes_version": "1.29.4",
            "node_pools": [{"name": "general", "instance_type": "m5.large", "count": 2}],
            "params": {"management_cluster": "mgmt", "infrastructure": "aws", "namespace": "fleet"},
        }
    )

    # when Keelson provisions an EKS cluster
    operation = cluster_create(actor=None, team=team, name="eks-1", spec=spec)
    assert Cluster.objects.get(name="eks-1").provider == "aws"
    thread = _in_background(operation)

    # then the Cluster API objects appear, applied by Keelson
    capi_cluster = wait_for(
        _get(api, "cluster.x-k8s.io/v1beta1", "Cluster", "eks-1"), timeout=30, what="the Cluster"
    )
    assert capi_cluster["spec"]["controlPlaneRef"]["kind"] == "AWSManagedControlPlane"
    control_plane = wait_for(
        _get(
            api,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "AWSManagedControlPlane",
            "eks-1-control-plane",
        ),
        timeout=30,
        what="the control plane",
    )
    assert control_plane["spec"] == {
        "region": "eu-west-1",
        "version": "v1.29.4",
        "eksClusterName": "eks-1",
    }
    assert {f["manager"] for f in control_plane["metadata"]["managedFields"]} == {"keelson"}
    assert control_plane["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "keelson"
    pool = wait_for(
        _get(api, "cluster.x-k8s.io/v1beta1", "MachinePool", "eks-1-general"),
        timeout=30,
        what="the machine pool",
    )
    assert pool["spec"]["replicas"] == 2
    machine = wait_for(
        _get(
            api, "infrastructure.cluster.x-k8s.io/v1beta2", "AWSManagedMachinePool", "eks-1-general"
        ),
        timeout=30,
        what="the AWS machine pool",
    )
    assert machine["spec"]["instanceType"] == "m5.large"

    # when the "controllers" report progress, then the kubeconfig Secret
    _patch(
        api,
        "cluster.x-k8s.io/v1beta1",
        "Cluster",
        "eks-1",
        {
            "status": {
                "phase": "Provisioning",
                "infrastructureReady": True,
                "conditions": [{"type": "InfrastructureReady", "status": "True"}],
            }
        },
    )
    time.sleep(0.5)
    _patch(
        api,
        "cluster.x-k8s.io/v1beta1",
        "Cluster",
        "eks-1",
        {
            "status": {
                "phase": "Provisioned",
                "controlPlaneReady": True,
                "conditions": [
                    {"type": "InfrastructureReady", "status": "True"},
                    {"type": "ControlPlaneReady", "status": "True"},
                ],
            }
        },
    )
    kubeconfig = yaml.safe_dump(kube_cluster.control_plane.kubeconfig())
    k8s.CoreV1Api(api).create_namespaced_secret(
        "fleet",
        {
            "metadata": {"name": "eks-1-kubeconfig"},
            "type": "cluster.x-k8s.io/secret",
            "data": {"value": base64.b64encode(kubeconfig.encode()).decode()},
        },
    )

    # then the operation follows it to the end and the workload cluster is registered
    operation = _finish(thread, operation)
    log = "\n".join(operation.log_lines.values_list("text", flat=True))
    assert "Cluster phase: Provisioning" in log
    assert "ControlPlaneReady=True" in log
    eks = Cluster.objects.get(name="eks-1")
    assert eks.api_server_url == kube_cluster.control_plane.server
    assert eks.status == "ready"

    # when it is upgraded, the version is patched and followed
    upgrade = cluster_upgrade(actor=None, cluster=eks, version="1.30.1")
    thread = _in_background(upgrade)
    wait_for(
        lambda: (
            (
                _get(
                    api,
                    "controlplane.cluster.x-k8s.io/v1beta2",
                    "AWSManagedControlPlane",
                    "eks-1-control-plane",
                )()
                or {}
            )["spec"]["version"]
            == "v1.30.1"
        ),
        timeout=30,
        what="the version patch",
    )
    _patch(
        api,
        "controlplane.cluster.x-k8s.io/v1beta2",
        "AWSManagedControlPlane",
        "eks-1-control-plane",
        {"status": {"version": "v1.30.1"}},
    )
    _finish(thread, upgrade)

    # when a pool is scaled
    scale = cluster_scale(actor=None, cluster=eks, pool="general", count=3)
    thread = _in_background(scale)
    wait_for(
        lambda: (
            _get(api, "cluster.x-k8s.io/v1beta1", "MachinePool", "eks-1-general")()["spec"][
                "replicas"
            ]
            == 3
        ),
        timeout=30,
        what="the replicas patch",
    )
    _patch(
        api,
        "cluster.x-k8s.io/v1beta1",
        "MachinePool",
        "eks-1-general",
        {"status": {"readyReplicas": 3}},
    )
    _finish(thread, scale)

    # when it is deleted, Keelson waits for Cluster API's finalizer to go
    _patch(
        api,
        "cluster.x-k8s.io/v1beta1",
        "Cluster",
        "eks-1",
        {"metadata": {"finalizers": ["cluster.cluster.x-k8s.io"]}},
    )
    delete = cluster_destroy(actor=None, cluster=eks)
    thread = _in_background(delete)
    wait_for(
        lambda: (
            (_get(api, "cluster.x-k8s.io/v1beta1", "Cluster", "eks-1")() or {})
            .get("metadata", {})
            .get("deletion_timestamp")
            or (_get(api, "cluster.x-k8s.io/v1beta1", "Cluster", "eks-1")() or {})
            .get("metadata", {})
            .get("deletionTimestamp")
        ),
        timeout=30,
        what="the deletion to start",
    )
    assert thread.is_alive()  # still waiting for the finalizer
    _patch(api, "cluster.x-k8s.io/v1beta1", "Cluster", "eks-1", {"metadata": {"finalizers": []}})
    _finish(thread, delete)
    assert not Cluster.objects.filter(name="eks-1").exists()


def test_failure_reported_by_cluster_api_fails_the_operation(
    settings: Any, management: LocalCluster
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    team = make_team()
    register_local(management, team=team, name="mgmt")
    api = management.control_plane.api_client()
    spec = ClusterSpec.from_json(
        {
            "provider": "capi",
            "region": "westeurope",
            "kubernetes_version": "1.29.4",
            "node_pools": [{"name": "system", "instance_type": "Standard_D4s_v5", "count": 1}],
            "params": {
                "management_cluster": "mgmt",
                "infrastructure": "azure",
                "namespace": "fleet",
                "resource_group": "rg-fleet",
                "subscription_id": "0000",
            },
        }
    )
    operation = cluster_create(actor=None, team=team, name="aks-1", spec=spec)
    thread = _in_background(operation)
    wait_for(
        _get(api, "cluster.x-k8s.io/v1beta1", "Cluster", "aks-1"), timeout=30, what="the Cluster"
    )
    pool = _get(
        api, "infrastructure.cluster.x-k8s.io/v1beta1", "AzureManagedMachinePool", "aks-1-system"
    )()
    assert pool["spec"] == {"mode": "System", "sku": "Standard_D4s_v5", "name": "system"}
    _patch(
        api,
        "cluster.x-k8s.io/v1beta1",
        "Cluster",
        "aks-1",
        {
            "status": {
                "phase": "Failed",
                "failureReason": "InvalidConfiguration",
                "failureMessage": "subscription 0000 not found",
            }
        },
    )
    thread.join(timeout=60)
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert operation.error == (
        "Cluster API reports InvalidConfiguration: subscription 0000 not found"
    )
    assert Cluster.objects.get(name="aks-1").provisioning.lifecycle == "failed"


def test_a_cancel_stops_the_provider_at_its_next_step(
    settings: Any, management: LocalCluster
) -> None:
    from operations.services import operation_cancel

    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    team = make_team()
    register_local(management, team=team, name="mgmt")
    api = management.control_plane.api_client()
    spec = ClusterSpec.from_json(
        {
            "provider": "capi",
            "region": "eu-west-1",
            "kubernetes_version": "1.29.4",
            "node_pools": [{"name": "general", "instance_type": "m5.large", "count": 1}],
            "params": {"management_cluster": "mgmt", "infrastructure": "aws", "namespace": "fleet"},
        }
    )
    operation = cluster_create(actor=None, team=team, name="eks-cancel", spec=spec)
    thread = _in_background(operation)
    wait_for(
        _get(api, "cluster.x-k8s.io/v1beta1", "Cluster", "eks-cancel"),
        timeout=30,
        what="the Cluster",
    )
    operation_cancel(operation=Operation.objects.get(pk=operation.pk), actor=None)
    thread.join(timeout=30)
    assert not thread.is_alive()
    operation.refresh_from_db()
    assert operation.state == "canceled"
    assert "Canceled" in operation.message
    assert Cluster.objects.get(name="eks-cancel").provisioning.lifecycle == "failed"
