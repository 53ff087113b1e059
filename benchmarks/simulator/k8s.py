"""Building blocks of the objects a simulated cluster serves, as an API server returns them."""

from __future__ import annotations

from typing import Any

from benchmarks.simulator.shape import INDEX_MARK


def list_of(kind: str, items: list[dict[str, Any]], api_version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "1000"},
        "items": items,
    }


def uid(name: str) -> str:
    return f"{name}-{INDEX_MARK}"


def meta(
    name: str,
    namespace: str,
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Object metadata as an API server returns it; `owner` is the controlling object."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid(f"{namespace}.{name}"),
        "resourceVersion": f"{INDEX_MARK}0",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": labels or {},
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


RESTRICTED_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
_PROBE = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}


def container(
    name: str,
    cpu: str,
    memory: str,
    *,
    tag: str = "1.0",
    limits: bool = True,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
    if limits:
        resources["limits"] = {"cpu": "1", "memory": "1Gi"}
    return {
        "name": name,
        "image": f"registry.example/{name}:{tag}",
        "resources": resources,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "livenessProbe": _PROBE,
        "readinessProbe": _PROBE,
        "securityContext": RESTRICTED_CONTEXT if context is None else context,
    }


def labels(app: str) -> dict[str, str]:
    return {"app": app, "app.kubernetes.io/name": app}


def pod_spec(container: dict[str, Any], *, host: bool = False, node: str = "") -> dict[str, Any]:
    """A pod spec; `host`: a node agent's (host network and PID, a hostPath volume)."""
    spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "restartPolicy": "Always",
    }
    if node:
        spec["nodeName"] = node
    if host:
        spec.update(hostNetwork=True, hostPID=True, securityContext={})
        spec["volumes"] = [{"name": "proc", "hostPath": {"path": "/proc"}}]
        container["volumeMounts"] = [{"name": "proc", "mountPath": "/host/proc"}]
    return spec


def controller(
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    pod_spec: dict[str, Any],
    *,
    replicas: int | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A workload controller with its pod template (and a ready status)."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": labels(name)}, "spec": pod_spec},
    }
    status: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
        status = {"replicas": replicas, "readyReplicas": replicas}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": meta(name, namespace, labels(name), owner),
        "spec": spec,
        "status": status,
    }


def list_path(group_version: str, plural: str) -> str:
    prefix = "/api" if group_version == "v1" else "/apis"
    return f"{prefix}/{group_version}/{plural}"


def service(name: str, namespace: str, kind: str = "ClusterIP") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace, labels(name)),
        "spec": {
            "type": kind,
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": "10.96.0.10",
        },
    }


def network_policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, namespace),
        "spec": spec,
    }
