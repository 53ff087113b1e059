"""Cluster API objects for a cluster spec, per infrastructure (pure functions).

Shapes follow the upstream providers: CAPA's managed EKS (AWSManagedControlPlane +
AWSManagedMachinePool), CAPZ's managed AKS (AzureManagedControlPlane +
AzureManagedMachinePool), CAPG's managed GKE (GCPManagedControlPlane +
GCPManagedMachinePool), and a generic self-managed kubeadm shape on vSphere
(KubeadmControlPlane + MachineDeployments of VSphereMachineTemplates).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from clusters.providers.base import ClusterSpec, NodePool
from clusters.providers.catalog import INSTANCE_TYPES

CAPI = "cluster.x-k8s.io/v1beta1"
INFRA_V1B1 = "infrastructure.cluster.x-k8s.io/v1beta1"
INFRA_V1B2 = "infrastructure.cluster.x-k8s.io/v1beta2"
CONTROLPLANE_V1B1 = "controlplane.cluster.x-k8s.io/v1beta1"
CONTROLPLANE_V1B2 = "controlplane.cluster.x-k8s.io/v1beta2"
BOOTSTRAP_V1B1 = "bootstrap.cluster.x-k8s.io/v1beta1"
INFRASTRUCTURES = ("aws", "azure", "gcp", "vsphere")
OWNER_LABEL = "keelson.io/cluster"

# What each infrastructure needs in `params`, beyond management_cluster and namespace.
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {
    "aws": (),
    "azure": ("resource_group", "subscription_id"),
    "gcp": ("project",),
    "vsphere": ("server", "datacenter", "template", "control_plane_endpoint"),
}


def validate_params(spec: ClusterSpec) -> None:
    params = spec.params
    infrastructure = params.get("infrastructure")
    if infrastructure not in INFRASTRUCTURES:
        raise ValidationError(
            {"params": f"params.infrastructure must be one of {', '.join(INFRASTRUCTURES)}."}
        )
    if not params.get("management_cluster"):
        raise ValidationError(
            {"params": "params.management_cluster: name the registered management cluster."}
        )
    missing = [key for key in REQUIRED_PARAMS[infrastructure] if not params.get(key)]
    if missing:
        raise ValidationError(
            {"params": f"{infrastructure} needs: {', '.join('params.' + m for m in missing)}."}
        )
    if infrastructure != "vsphere" and not spec.region:
        raise ValidationError({"region": f"{infrastructure} clusters need a region."})


def _meta(name: str, namespace: str, owner: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {OWNER_LABEL: owner}}


def _cluster(
    name: str, ns: str, infra: tuple[str, str], control_plane: tuple[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": CAPI,
        "kind": "Cluster",
        "metadata": _meta(name, ns, name),
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}},
            "infrastructureRef": {"apiVersion": infra[0], "kind": infra[1], "name": name},
            "controlPlaneRef": {
                "apiVersion": control_plane[0],
                "kind": control_plane[1],
                "name": f"{name}-control-plane",
            },
        },
    }


def _machine_pool(
    name: str, ns: str, pool: NodePool, version: str, infra: tuple[str, str]
) -> dict[str, Any]:
    pool_name = f"{name}-{pool.name}"
    return {
        "apiVersion": CAPI,
        "kind": "MachinePool",
        "metadata": _meta(pool_name, ns, name),
        "spec": {
            "clusterName": name,
            "replicas": pool.count,
            "template": {
                "metadata": {"labels": pool.labels},
                "spec": {
                    "clusterName": name,
                    "version": version,
                    "bootstrap": {"dataSecretName": ""},
                    "infrastructureRef": {
                        "apiVersion": infra[0],
                        "kind": infra[1],
                        "name": pool_name,
                    },
                },
            },
        },
    }


def render(name: str, spec: ClusterSpec) -> list[dict[str, Any]]:
    """Every object to apply, in dependency order (referenced objects first)."""
    validate_params(spec)
    params = spec.params
    ns = str(params.get("namespace") or "default")
    version = spec.kubernetes_version
    infrastructure = params["infrastructure"]
    namespace = (
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
        if ns != "default"
        else []
    )
    return namespace + _render(name, ns, spec, infrastructure, version)


def _render(
    name: str, ns: str, spec: ClusterSpec, infrastructure: str, version: str
) -> list[dict[str, Any]]:
    params = spec.params
    if infrastructure == "aws":
        objects = [
            {
                "apiVersion": INFRA_V1B2,
                "kind": "AWSManagedCluster",
                "metadata": _meta(name, ns, name),
                "spec": {},
            },
            {
                "apiVersion": CONTROLPLANE_V1B2,
                "kind": "AWSManagedControlPlane",
                "metadata": _meta(f"{name}-control-plane", ns, name),
                "spec": {"region": spec.region, "version": version, "eksClusterName": name},
            },
            _cluster(
                name,
                ns,
                (INFRA_V1B2, "AWSManagedCluster"),
                (CONTROLPLANE_V1B2, "AWSManagedControlPlane"),
            ),
        ]
        for pool in spec.node_pools:
            objects.append(
                {
                    "apiVersion": INFRA_V1B2,
                    "kind": "AWSManagedMachinePool",
                    "metadata": _meta(f"{name}-{pool.name}", ns, name),
                    "spec": {
                        "instanceType": pool.instance_type,
                        "scaling": {"minSize": pool.count, "maxSize": max(pool.count, 1) * 2},
                        "eksNodegroupName": f"{name}-{pool.name}",
                    },
                }
            )
            objects.append(
                _machine_pool(name, ns, pool, version, (INFRA_V1B2, "AWSManagedMachinePool"))
            )
        return objects
    if infrastructure == "azure":
        objects = [
            {
                "apiVersion": INFRA_V1B1,
                "kind": "AzureManagedCluster",
                "metadata": _meta(name, ns, name),
                "spec": {},
            },
            {
                "apiVersion": INFRA_V1B1,
                "kind": "AzureManagedControlPlane",
                "metadata": _meta(f"{name}-control-plane", ns, name),
                "spec": {
                    "location": spec.region,
                    "resourceGroupName": params["resource_group"],
                    "subscriptionID": params["subscription_id"],
                    "version": version,
                },
            },
            _cluster(
                name,
                ns,
                (INFRA_V1B1, "AzureManagedCluster"),
                (INFRA_V1B1, "AzureManagedControlPlane"),
            ),
        ]
        for index, pool in enumerate(spec.node_pools):
            objects.append(
                {
                    "apiVersion": INFRA_V1B1,
                    "kind": "AzureManagedMachinePool",
                    "metadata": _meta(f"{name}-{pool.name}", ns, name),
                    "spec": {
                        # AKS needs one System pool; the first pool is it.
                        "mode": "System" if index == 0 else "User",
                        "sku": pool.instance_type,
                        "name": pool.name.replace("-", "")[:12],
                    },
                }
            )
            objects.append(
                _machine_pool(name, ns, pool, version, (INFRA_V1B1, "AzureManagedMachinePool"))
            )
        return objects
    if infrastructure == "gcp":
        objects = [
            {
                "apiVersion": INFRA_V1B1,
                "kind": "GCPManagedCluster",
                "metadata": _meta(name, ns, name),
                "spec": {"project": params["project"], "region": spec.region},
            },
            {
                "apiVersion": INFRA_V1B1,
                "kind": "GCPManagedControlPlane",
                "metadata": _meta(f"{name}-control-plane", ns, name),
                "spec": {
                    "project": params["project"],
                    "location": spec.region,
                    "clusterName": name,
                    "controlPlaneVersion": version,
                },
            },
            _cluster(
                name, ns, (INFRA_V1B1, "GCPManagedCluster"), (INFRA_V1B1, "GCPManagedControlPlane")
            ),
        ]
        for pool in spec.node_pools:
            objects.append(
                {
                    "apiVersion": INFRA_V1B1,
                    "kind": "GCPManagedMachinePool",
                    "metadata": _meta(f"{name}-{pool.name}", ns, name),
                    "spec": {"nodePoolName": pool.name, "machineType": pool.instance_type},
                }
            )
            objects.append(
                _machine_pool(name, ns, pool, version, (INFRA_V1B1, "GCPManagedMachinePool"))
            )
        return objects
    return _render_vsphere(name, ns, spec)


def _vsphere_machine(
    name: str, ns: str, owner: str, params: dict[str, Any], instance_type: str
) -> dict[str, Any]:
    shape = INSTANCE_TYPES[instance_type]
    return {
        "apiVersion": INFRA_V1B1,
        "kind": "VSphereMachineTemplate",
        "metadata": _meta(name, ns, owner),
        "spec": {
            "template": {
                "spec": {
                    "server": params["server"],
                    "datacenter": params["datacenter"],
                    "template": params["template"],
                    "cloneMode": "linkedClone",
                    "numCPUs": shape.cpu,
                    "memoryMiB": shape.memory_gib * 1024,
                    "diskGiB": 40,
                }
            }
        },
    }


def _render_vsphere(name: str, ns: str, spec: ClusterSpec) -> list[dict[str, Any]]:
    params = spec.params
    host, _, port = str(params["control_plane_endpoint"]).partition(":")
    control_plane_type = str(params.get("control_plane_instance_type") or "m5.large")
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": INFRA_V1B1,
            "kind": "VSphereCluster",
            "metadata": _meta(name, ns, name),
            "spec": {
                "server": params["server"],
                "controlPlaneEndpoint": {"host": host, "port": int(port or 6443)},
            },
        },
        _vsphere_machine(f"{name}-control-plane", ns, name, params, control_plane_type),
        {
            "apiVersion": CONTROLPLANE_V1B1,
            "kind": "KubeadmControlPlane",
            "metadata": _meta(f"{name}-control-plane", ns, name),
            "spec": {
                "replicas": int(params.get("control_plane_replicas", 3)),
                "version": spec.kubernetes_version,
                "machineTemplate": {
                    "infrastructureRef": {
                        "apiVersion": INFRA_V1B1,
                        "kind": "VSphereMachineTemplate",
                        "name": f"{name}-control-plane",
                    }
                },
                "kubeadmConfigSpec": {
                    "clusterConfiguration": {},
                    "initConfiguration": {},
                    "joinConfiguration": {},
                },
            },
        },
        _cluster(
            name, ns, (INFRA_V1B1, "VSphereCluster"), (CONTROLPLANE_V1B1, "KubeadmControlPlane")
        ),
    ]
    for pool in spec.node_pools:
        pool_name = f"{name}-{pool.name}"
        objects.append(_vsphere_machine(pool_name, ns, name, params, pool.instance_type))
        objects.append(
            {
                "apiVersion": BOOTSTRAP_V1B1,
                "kind": "KubeadmConfigTemplate",
                "metadata": _meta(pool_name, ns, name),
                "spec": {"template": {"spec": {"joinConfiguration": {}}}},
            }
        )
        objects.append(
            {
                "apiVersion": CAPI,
                "kind": "MachineDeployment",
                "metadata": _meta(pool_name, ns, name),
                "spec": {
                    "clusterName": name,
                    "replicas": pool.count,
                    "selector": {"matchLabels": {}},
                    "template": {
                        "metadata": {"labels": pool.labels},
                        "spec": {
                            "clusterName": name,
                            "version": spec.kubernetes_version,
                            "bootstrap": {
                                "configRef": {
                                    "apiVersion": BOOTSTRAP_V1B1,
                                    "kind": "KubeadmConfigTemplate",
                                    "name": pool_name,
                                }
                            },
                            "infrastructureRef": {
                                "apiVersion": INFRA_V1B1,
                                "kind": "VSphereMachineTemplate",
                                "name": pool_name,
                            },
                        },
                    },
                },
            }
        )
    return objects


def pool_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The MachinePools / MachineDeployments (what scaling changes)."""
    return [o for o in objects if o["kind"] in ("MachinePool", "MachineDeployment")]
