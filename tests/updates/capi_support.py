"""Kubernetes upgrades through the `capi` provider: a management cluster (a real
kube-apiserver with the Cluster API CRDs, see tests/clusters/capi_env.py) where the test
plays the Cluster API controllers, and clusters Keelson built there with Cluster API on
vSphere (the self-managed kubeadm shape)."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from django.db import connection
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.choices import ClusterStatus, Lifecycle
from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import ClusterSpec
from clusters.providers.capi_render import render
from clusters.services.provisioning import cluster_lifecycle_run
from kube.apply import apply_manifest
from localkube.env import LocalCluster, LocalKubeEnv
from tests.clusters.capi_env import crd, install_crds, resource
from tests.clusters.helpers import register_local, wait_for

MERGE = "application/merge-patch+json"
NAMESPACE = "fleet"
KCP_API, KCP_KIND = "controlplane.cluster.x-k8s.io/v1beta1", "KubeadmControlPlane"
MD_API, MD_KIND = "cluster.x-k8s.io/v1beta1", "MachineDeployment"
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


def start_management(kube_env: LocalKubeEnv, name: str) -> LocalCluster:
    """An API server alone (Cluster API's controllers are the test) with the CRDs served."""
    local = kube_env.start_cluster(name, controllers=False, simulate=False)
    api = local.control_plane.api_client()
    install_crds(api)
    for kind in KUBEADM_KINDS:
        apply_manifest(api, crd(*kind))
    wait_for(lambda: _served(api), timeout=30, what="the kubeadm CRDs to be served")
    return local


def _served(api: k8s.ApiClient) -> bool:
    try:
        for group, version, kind, _ in KUBEADM_KINDS:
            resource(api, f"{group}/{version}", kind)
    except Exception:
        return False
    return True


def read(api: k8s.ApiClient, api_version: str, kind: str, name: str) -> dict[str, Any]:
    """The object in the management cluster's `fleet` namespace, {} if there is none."""
    try:
        found: dict[str, Any] = (
            resource(api, api_version, kind).get(name=name, namespace=NAMESPACE).to_dict()
        )
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    return found


def kcp_version(api: k8s.ApiClient, cluster: str) -> str:
    """The version the cluster's KubeadmControlPlane asks for."""
    found = read(api, KCP_API, KCP_KIND, f"{cluster}-control-plane")
    return str((found.get("spec") or {}).get("version", ""))


def kcp_reported(api: k8s.ApiClient, cluster: str) -> str:
    """The version its controller reports every control-plane machine runs."""
    found = read(api, KCP_API, KCP_KIND, f"{cluster}-control-plane")
    return str((found.get("status") or {}).get("version", ""))


def md_version(api: k8s.ApiClient, cluster: str) -> str:
    found = read(api, MD_API, MD_KIND, f"{cluster}-workers")
    return str(found["spec"]["template"]["spec"]["version"])


def report_kcp(api: k8s.ApiClient, cluster: str, version: str) -> None:
    """What KubeadmControlPlane's controller does once every machine runs `version`."""
    resource(api, KCP_API, KCP_KIND).patch(
        name=f"{cluster}-control-plane",
        namespace=NAMESPACE,
        body={"status": {"version": version}},
        content_type=MERGE,
    )


def play_control_planes(api: k8s.ApiClient, clusters: list[str]) -> list[str]:
    """One pass of the KubeadmControlPlane controller: every control plane asked for a new
    version reports it (its machines replaced). Returns the clusters it moved."""
    moved = []
    for name in clusters:
        wanted = kcp_version(api, name)
        if wanted and kcp_reported(api, name) != wanted:
            report_kcp(api, name, wanted)
            moved.append(name)
    return moved


def _run_closing(operation_id: str) -> None:
    try:
        cluster_lifecycle_run(operation_id=UUID(operation_id))
    finally:
        connection.close()


def provisioning_worker(operation_id: str) -> threading.Thread:
    """The provisioning worker, in the background: the provider follows Cluster API."""
    thread = threading.Thread(target=_run_closing, args=(operation_id,), daemon=True)
    thread.start()
    return thread


def vsphere_cluster(
    team: Any,
    workload: LocalCluster,
    api: k8s.ApiClient,
    *,
    name: str,
    management: str,
    labels: dict[str, str] | None = None,
) -> Cluster:
    """A Ready cluster Keelson built with Cluster API on vSphere, at v1.27.3 with 2 workers;
    its API server is `workload` (what the health gates read)."""
    spec = ClusterSpec.from_json(
        {
            "provider": "capi",
            "region": "",
            "kubernetes_version": "1.27.3",
            "node_pools": [{"name": "workers", "instance_type": "m5.large", "count": 2}],
            "params": {
                "management_cluster": management,
                "infrastructure": "vsphere",
                "namespace": NAMESPACE,
                "server": "vcenter.example.com",
                "datacenter": "dc1",
                "template": "ubuntu-2204-kube",
                "control_plane_endpoint": "10.0.0.10:6443",
                "control_plane_replicas": 1,
            },
        }
    )
    cluster = register_local(workload, team=team, name=name)
    Cluster.objects.filter(pk=cluster.pk).update(
        provider="onprem", status=ClusterStatus.READY, labels=labels or {}
    )
    cluster.refresh_from_db()
    ClusterProvisioning.objects.create(
        cluster=cluster, provider="capi", spec=spec.as_json(), lifecycle=Lifecycle.ACTIVE
    )
    for manifest in render(name, spec):
        apply_manifest(api, manifest)
    return cluster


def local_cluster(team: Any, name: str, *, labels: dict[str, str] | None = None) -> Cluster:
    """A Ready cluster Keelson built with the `local` provider (which runs one version)."""
    cluster = Cluster.objects.create(
        name=name, team=team, provider="local", status=ClusterStatus.READY, labels=labels or {}
    )
    ClusterProvisioning.objects.create(
        cluster=cluster,
        provider="local",
        lifecycle=Lifecycle.ACTIVE,
        spec={
            "provider": "local",
            "region": "",
            "kubernetes_version": "v1.20.2",
            "node_pools": [{"name": "pool", "instance_type": "m5.large", "count": 1}],
        },
    )
    return cluster
