"""A management cluster with the Cluster API CRDs, for tests that play the controllers."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from kube.apply import apply_manifest

KINDS = [
    ("cluster.x-k8s.io", "v1beta1", "Cluster", "clusters"),
    ("cluster.x-k8s.io", "v1beta1", "MachinePool", "machinepools"),
    ("cluster.x-k8s.io", "v1beta1", "MachineDeployment", "machinedeployments"),
    ("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSManagedCluster", "awsmanagedclusters"),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "AWSManagedMachinePool",
        "awsmanagedmachinepools",
    ),
    (
        "controlplane.cluster.x-k8s.io",
        "v1beta2",
        "AWSManagedControlPlane",
        "awsmanagedcontrolplanes",
    ),
    ("infrastructure.cluster.x-k8s.io", "v1beta1", "AzureManagedCluster", "azuremanagedclusters"),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "AzureManagedControlPlane",
        "azuremanagedcontrolplanes",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "AzureManagedMachinePool",
        "azuremanagedmachinepools",
    ),
]


def crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def install_crds(api: k8s.ApiClient) -> None:
    for group, version, kind, plural in KINDS:
        apply_manifest(api, crd(group, version, kind, plural))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            dynamic = DynamicClient(api)
            for group, version, kind, _ in KINDS:
                dynamic.resources.get(api_version=f"{group}/{version}", kind=kind)
            return
        except Exception:
            time.sleep(0.5)
    raise AssertionError("the Cluster API CRDs were not served within 30 s")


def resource(api: k8s.ApiClient, api_version: str, kind: str) -> Any:
    return DynamicClient(api).resources.get(api_version=api_version, kind=kind)
