"""The Kubernetes-version change of update runs through the `capi` provider, against a real
kube-apiserver holding the Cluster API CRDs, where the test plays the Cluster API
controllers (as tests/clusters/test_provisioning_capi.py does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.choices import Lifecycle
from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import ClusterSpec
from clusters.providers.capi_render import render
from clusters.services.provisioning import cluster_lifecycle_run
from kube.apply import apply_manifest
from localkube import LocalKubeEnv
from localkube.env import LocalCluster
from operations.models import Operation
from operations.services import operation_cancel
from tests.clusters.capi_env import crd, install_crds, resource
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_team
from updates.changes import change_for
from updates.changes.base import Change

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]
MERGE = "application/merge-patch+json"
KCP = ("controlplane.cluster.x-k8s.io/v1beta1", "KubeadmControlPlane", "vs-1-control-plane")
MD = ("cluster.x-k8s.io/v1beta1", "MachineDeployment", "vs-1-workers")
# The self-managed kubeadm shape on vSphere, beside the kinds capi_env installs.
KUBEADM_KINDS = [
    ("controlplane.cluster.x-k8s.io", "v1beta1", "KubeadmControlPlane", "kubeadmcontrolplanes"),
    ("bootstrap.cluster.x-k8s.io", "v1beta1", "KubeadmConfigTemplate", "kubeadmconfigtemplates"),
    ("infrastructure.cluster.x-k8s.io", "v1beta1", "VSphereCluster", "vsphereclusters"),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "VSphereMachineTemplate",
        "vspheremachinetemplates",
    ),
]


@pytest.fixture(scope="module")
def management(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    local = kube_env.start_cluster("kinds-mgmt", controllers=False, simulate=False)
    api = local.control_plane.api_client()
    install_crds(api)
    for kind in KUBEADM_KINDS:
        apply_manifest(api, crd(*kind))
    wait_for(lambda: _served(api), timeout=30, what="the kubeadm CRDs to be served")
    yield local
    kube_env.stop_cluster("kinds-mgmt", remove_data=True)


def _served(api: k8s.ApiClient) -> bool:
    try:
        for group, version, kind, _ in KUBEADM_KINDS:
            resource(api, f"{group}/{version}", kind)
    except Exception:
        return False
    return True


def _read(api: k8s.ApiClient, api_version: str, kind: str, name: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = (
            resource(api, api_version, kind).get(name=name, namespace="fleet").to_dict()
        )
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    return found


def _kcp_version(api: k8s.ApiClient) -> str:
    return str((_read(api, *KCP).get("spec") or {}).get("version", ""))


def _md_version(api: k8s.ApiClient) -> str:
    return str(_read(api, *MD)["spec"]["template"]["spec"]["version"])


def _report_kcp(api: k8s.ApiClient, version: str) -> None:
    """What KubeadmControlPlane's controller does once every machine runs `version`."""
    resource(api, KCP[0], KCP[1]).patch(
        name=KCP[2], namespace="fleet", body={"status": {"version": version}}, content_type=MERGE
    )


def _worker(operation_id: str) -> threading.Thread:
    """The provisioning worker, in the background: the provider follows Cluster API."""
    thread = threading.Thread(
        target=cluster_lifecycle_run, kwargs={"operation_id": operation_id}, daemon=True
    )
    thread.start()
    return thread


def _poll_until(change: Change, cluster: Cluster, state: dict[str, Any], wanted: str) -> str:
    def ended() -> str:
        step = change.poll(cluster, state)
        return step.message if step.state == wanted else ""

    return str(wait_for(ended, timeout=30, what=f"the change to be {wanted}"))


def _vsphere_cluster(team: Any, workload: LocalCluster, api: k8s.ApiClient) -> Cluster:
    """A cluster Keelson built with Cluster API on vSphere, at v1.27.3, with 2 workers."""
    spec = ClusterSpec.from_json(
        {
            "provider": "capi",
            "region": "",
            "kubernetes_version": "1.27.3",
            "node_pools": [{"name": "workers", "instance_type": "m5.large", "count": 2}],
            "params": {
                "management_cluster": "kinds-mgmt",
                "infrastructure": "vsphere",
                "namespace": "fleet",
                "server": "vcenter.example.com",
                "datacenter": "dc1",
                "template": "ubuntu-2204-kube",
                "control_plane_endpoint": "10.0.0.10:6443",
                "control_plane_replicas": 1,
            },
        }
    )
    cluster = register_local(workload, team=team, name="vs-1")
    Cluster.objects.filter(pk=cluster.pk).update(provider="onprem")
    cluster.refresh_from_db()
    ClusterProvisioning.objects.create(
        cluster=cluster, provider="capi", spec=spec.as_json(), lifecycle=Lifecycle.ACTIVE
    )
    for manifest in render("vs-1", spec):
        apply_manifest(api, manifest)
    return cluster


def test_an_upgrade_goes_through_cluster_api_control_plane_first(
    settings: Any, management: LocalCluster, kube_cluster: LocalCluster
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    api = management.control_plane.api_client()
    team = make_team()
    registered = register_local(management, team=team, name="kinds-mgmt")
    vs1 = _vsphere_cluster(team, kube_cluster, api)
    local = Cluster.objects.create(name="lab-1", team=team, provider="local")
    ClusterProvisioning.objects.create(
        cluster=local,
        provider="local",
        lifecycle=Lifecycle.ACTIVE,
        spec={
            "provider": "local",
            "region": "",
            "kubernetes_version": "v1.20.2",
            "node_pools": [{"name": "pool", "instance_type": "m5.large", "count": 1}],
        },
    )
    change = change_for("kubernetes_version", team=team, params={"version": "1.28.0"})
    assert change.params() == {"version": "v1.28.0"}

    # when the run is previewed
    plans = {p.cluster_name: p for p in change.plan([vs1, registered, local])}
    impact = change.impact([vs1])

    # then vs-1 goes 1.27.3 → 1.28.0 and the others are skipped with their reason
    assert (plans["vs-1"].from_value, plans["vs-1"].to_value) == ("v1.27.3", "v1.28.0")
    assert plans["vs-1"].skip_reason == ""
    assert plans["vs-1"].estimate_seconds == 900 + 2 * 180
    assert plans["kinds-mgmt"].skip_reason.startswith("kinds-mgmt was registered, not created")
    assert plans["lab-1"].skip_reason == (
        "The local provider cannot upgrade clusters: it runs one version (v1.20.2)."
    )
    # and the preview shows both versions' end of life (upstream dates: an on-prem cluster)
    assert impact["vs-1"]["from"] == "v1.27 reached end of life 2024-06-28"
    assert impact["vs-1"]["to"] == "v1.28 reached end of life 2024-10-28"

    # when the change starts on vs-1
    state = change.start(vs1, actor=None)
    operation = Operation.objects.get(pk=state["operation"])
    assert operation.kind == "cluster.upgrade"
    assert change.poll(vs1, state).message == "The upgrade waits for a worker."
    thread = _worker(state["operation"])

    # then the control plane gets the new version while the workers keep theirs
    wait_for(lambda: _kcp_version(api) == "v1.28.0", timeout=30, what="the control plane patch")
    time.sleep(1)  # a few of the provider's checks
    assert _md_version(api) == "v1.27.3"
    assert change.poll(vs1, state).state == "running"
    # and a second run's start on the busy cluster fails it with the reason, changing nothing
    other = change_for("kubernetes_version", team=team, params={"version": "1.28.2"})
    refused = other.start(vs1, actor=None)
    assert "operation" not in refused
    assert other.poll(vs1, refused).message.startswith("vs-1 is busy: cluster.upgrade")

    # when Cluster API reports the control plane upgraded
    _report_kcp(api, "v1.28.0")

    # then the node pools follow and the change is done
    assert _poll_until(change, vs1, state, "done") == "Cluster vs-1 upgraded"
    thread.join(timeout=30)
    assert _md_version(api) == "v1.28.0"
    assert ClusterProvisioning.objects.get(cluster=vs1).spec["kubernetes_version"] == "v1.28.0"
    # and the next preview knows it: already there, and 1.30 would skip a minor version
    assert change.plan([vs1])[0].skip_reason == "Already on v1.28.0."
    assert change.poll(vs1, change.start(vs1, actor=None)).state == "done"
    skipping = change_for("kubernetes_version", team=team, params={"version": "v1.30.0"})
    assert skipping.plan([vs1])[0].skip_reason == (
        "v1.28.0 → v1.30.0 would skip v1.29: Kubernetes upgrades the control plane one minor "
        "version at a time."
    )
    # and it cannot be reverted
    with pytest.raises(ValidationError, match="cannot be reverted"):
        change.revert(vs1, state, actor=None)


def test_cancelling_the_upgrade_operation_fails_the_change(
    settings: Any, management: LocalCluster, kube_cluster: LocalCluster
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    api = management.control_plane.api_client()
    team = make_team()
    register_local(management, team=team, name="kinds-mgmt")
    vs1 = _vsphere_cluster(team, kube_cluster, api)
    change = change_for("kubernetes_version", team=team, params={"version": "1.28.1"})

    # given an upgrade under way, waiting for the control plane
    state = change.start(vs1, actor=None)
    thread = _worker(state["operation"])
    wait_for(lambda: _kcp_version(api) == "v1.28.1", timeout=30, what="the control plane patch")

    # when someone cancels its operation
    operation_cancel(operation=Operation.objects.get(pk=state["operation"]), actor=None)
    thread.join(timeout=30)

    # then the provider stopped at its next check and the change reports the cluster failed
    message = _poll_until(change, vs1, state, "failed")
    assert message.startswith("The upgrade was canceled")
    assert _md_version(api) == "v1.27.3"  # the workers were never touched
    assert ClusterProvisioning.objects.get(cluster=vs1).lifecycle == Lifecycle.ACTIVE
