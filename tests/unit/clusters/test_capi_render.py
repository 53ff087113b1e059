"""Cluster API objects per infrastructure (pure rendering and validation)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clusters.providers.base import ClusterSpec
from clusters.providers.capi_render import render


def _spec(infrastructure: str, **params: Any) -> ClusterSpec:
    return ClusterSpec.from_json(
        {
            "provider": "capi",
            "region": "europe-west1",
            "kubernetes_version": "1.29.4",
            "node_pools": [
                {"name": "system", "instance_type": "e2-standard-4", "count": 2},
                {"name": "batch", "instance_type": "m5.2xlarge", "count": 5},
            ],
            "params": {"management_cluster": "mgmt", "infrastructure": infrastructure, **params},
        }
    )


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]


def test_gke_objects() -> None:
    objects = render("gke-1", _spec("gcp", project="acme-prod", namespace="fleet"))
    assert _kinds(objects) == [
        "Namespace/fleet",
        "GCPManagedCluster/gke-1",
        "GCPManagedControlPlane/gke-1-control-plane",
        "Cluster/gke-1",
        "GCPManagedMachinePool/gke-1-system",
        "MachinePool/gke-1-system",
        "GCPManagedMachinePool/gke-1-batch",
        "MachinePool/gke-1-batch",
    ]
    control_plane = objects[2]
    assert control_plane["spec"] == {
        "project": "acme-prod",
        "location": "europe-west1",
        "clusterName": "gke-1",
        "controlPlaneVersion": "v1.29.4",
    }
    batch = objects[7]
    assert batch["spec"]["replicas"] == 5
    assert batch["spec"]["template"]["spec"]["infrastructureRef"] == {
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "GCPManagedMachinePool",
        "name": "gke-1-batch",
    }
    assert all(
        o["metadata"].get("labels", {}).get("keelson.io/cluster") in ("gke-1", None)
        for o in objects
    )


def test_vsphere_kubeadm_objects() -> None:
    objects = render(
        "dc-1",
        _spec(
            "vsphere",
            server="vcenter.example",
            datacenter="DC1",
            template="ubuntu-2204-kube-v1.29.4",
            control_plane_endpoint="10.0.0.10:6443",
        ),
    )
    kinds = _kinds(objects)
    assert kinds[:4] == [
        "VSphereCluster/dc-1",
        "VSphereMachineTemplate/dc-1-control-plane",
        "KubeadmControlPlane/dc-1-control-plane",
        "Cluster/dc-1",
    ]
    assert "MachineDeployment/dc-1-batch" in kinds
    control_plane = objects[2]["spec"]
    assert control_plane["replicas"] == 3 and control_plane["version"] == "v1.29.4"
    batch_machine = next(o for o in objects if _kinds([o]) == ["VSphereMachineTemplate/dc-1-batch"])
    assert batch_machine["spec"]["template"]["spec"]["numCPUs"] == 8
    assert batch_machine["spec"]["template"]["spec"]["memoryMiB"] == 32 * 1024
    assert objects[0]["spec"]["controlPlaneEndpoint"] == {"host": "10.0.0.10", "port": 6443}


@pytest.mark.parametrize(
    ("infrastructure", "params", "fragment"),
    [
        ("openstack", {}, "params.infrastructure must be one of"),
        ("gcp", {}, "gcp needs: params.project"),
        ("azure", {"resource_group": "rg"}, "azure needs: params.subscription_id"),
        ("vsphere", {"server": "v"}, "params.datacenter"),
    ],
)
def test_missing_parameters_are_named(
    infrastructure: str, params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        render("x", _spec(infrastructure, **params))
    assert fragment in str(raised.value)
