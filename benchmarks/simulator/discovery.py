"""Discovery as a 1.29 (or a legacy 1.20) API server answers it, plain and aggregated."""

from __future__ import annotations

from typing import Any

# (group version, plural, kind, namespaced) served to everyone; batch/v1 CronJobs only
# past 1.20, which serves them as batch/v1beta1.
RESOURCES = (
    ("v1", "namespaces", "Namespace", False),
    ("v1", "nodes", "Node", False),
    ("v1", "pods", "Pod", True),
    ("v1", "services", "Service", True),
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "events", "Event", True),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("apps/v1", "deployments", "Deployment", True),
    ("apps/v1", "replicasets", "ReplicaSet", True),
    ("apps/v1", "statefulsets", "StatefulSet", True),
    ("apps/v1", "daemonsets", "DaemonSet", True),
    ("batch/v1", "jobs", "Job", True),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True),
    ("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
)


def discovery(legacy: bool) -> dict[str, Any]:
    """`/api`, `/apis` and one resource list per group version, as a 1.29 (or, `legacy`,
    a 1.20) API server answers them."""
    cronjobs = ("batch/v1beta1" if legacy else "batch/v1", "cronjobs", "CronJob", True)
    by_version: dict[str, list[dict[str, Any]]] = {}
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    for group_version, plural, kind, namespaced in (*RESOURCES, cronjobs):
        by_version.setdefault(group_version, []).append(
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create"] if kind == "SelfSubjectAccessReview" else verbs,
            }
        )
        if kind != "SelfSubjectAccessReview":
            by_version[group_version].append(
                {
                    "name": f"{plural}/status",
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    # metrics-server's aggregated API (usage of pods and nodes), read by the cost collector
    by_version[METRICS_VERSION] = [
        {
            "name": plural,
            "singularName": "",
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["get", "list"],
        }
        for plural, kind, namespaced in (
            ("nodes", "NodeMetrics", False),
            ("pods", "PodMetrics", True),
        )
    ]
    groups: dict[str, list[str]] = {}
    for group_version in by_version:
        if group_version != "v1":
            group, _, version = group_version.partition("/")
            groups.setdefault(group, []).append(version)
    answers: dict[str, Any] = {
        "/api": {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
            ],
        },
        "/apis": {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{group}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for group, versions in groups.items()
            ],
        },
    }
    for group_version, resources in by_version.items():
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        answers[path] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }
    if not legacy:  # 1.27 and later also answer aggregated discovery
        answers["/api" + AGGREGATED] = aggregated(by_version, core=True)
        answers["/apis" + AGGREGATED] = aggregated(by_version, core=False)
    return answers


METRICS_VERSION = "metrics.k8s.io/v1beta1"


AGGREGATED = ";aggregated"  # the path suffix of an aggregated discovery answer


def aggregated(by_version: dict[str, list[dict[str, Any]]], *, core: bool) -> dict[str, Any]:
    """An APIGroupDiscoveryList (apidiscovery.k8s.io/v2beta1, as 1.29 serves it) of the
    core group (`/api`) or of the named groups (`/apis`), versions best first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for group_version, resources in by_version.items():
        group, _, version = group_version.rpartition("/")
        if (group == "") != core:
            continue
        entries = []
        for entry in resources:
            if "/" in entry["name"]:
                continue
            subresources = [
                {
                    "subresource": other["name"].partition("/")[2],
                    "responseKind": {"group": group, "version": version, "kind": other["kind"]},
                    "verbs": other["verbs"],
                }
                for other in resources
                if other["name"].startswith(entry["name"] + "/")
            ]
            entries.append(
                {
                    "resource": entry["name"],
                    "responseKind": {"group": group, "version": version, "kind": entry["kind"]},
                    "scope": "Namespaced" if entry["namespaced"] else "Cluster",
                    "singularResource": entry["singularName"],
                    "verbs": entry["verbs"],
                    **({"subresources": subresources} if subresources else {}),
                }
            )
        groups.setdefault(group, []).append(
            {"version": version, "resources": entries, "freshness": "Current"}
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2beta1",
        "metadata": {},
        "items": [
            {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}
            for group, versions in groups.items()
        ],
    }
