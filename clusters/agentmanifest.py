"""Least-privilege identities for Keelson in a member cluster.

The install manifest of a pull cluster's agent: Namespace, ServiceAccount, the
least-privilege ClusterRole and its binding, a Secret with the bootstrap token (and the
Secret the agent keeps its credential in), and the Deployment. Applied by the cluster's
admin (`kubectl apply -f -`); removed with `kubectl delete -f` of the same manifest.

Every permission is listed with why the agent needs it (`AGENT_RULES`). The agent applies
applications' objects and policy templates only of the kinds below: an application or a
template with another kind fails on this cluster with the API server's "forbidden" until
the admin adds a rule for it. The agent's own objects are not labelled as Keelson's
(`kube.ownership`), so a deregistration's cleanup does not pull the agent's permissions
from under it; removing the agent itself is the admin's `kubectl delete`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

NAMESPACE = "keelson-agent"
NAME = "keelson-agent"
STATE_SECRET = "keelson-agent-state"  # noqa: S105  # a Secret's name
BOOTSTRAP_SECRET = "keelson-agent-bootstrap"  # noqa: S105  # a Secret's name
PART_OF = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "keelson"}
READ = ["get", "list", "watch"]
WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]


@dataclass(frozen=True)
class Permission:
    why: str
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def rule(self) -> dict[str, Any]:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


# What the agent reads and writes, and why (docs/user-guide.md repeats this list).
AGENT_RULES = (
    Permission(
        "Inventory and health in its heartbeats: nodes, pods (cost per namespace and "
        "workload), warning events, namespaces, volumes, load balancers.",
        ("",),
        ("nodes", "pods", "events", "persistentvolumes"),
        tuple(READ),
    ),
    Permission(
        "Measured usage for cost, where metrics-server runs.",
        ("metrics.k8s.io",),
        ("pods", "nodes"),
        ("get", "list"),
    ),
    Permission(
        "Applications' objects and policy templates (server-side apply, status read back, "
        "pruning, cleanup of what Keelson labelled), and policy rules reading them.",
        ("",),
        (
            "namespaces",
            "services",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "persistentvolumeclaims",
            "limitranges",
            "resourcequotas",
        ),
        tuple(WRITE),
    ),
    Permission(
        "Workloads of applications (rollout status read back from them).",
        ("apps",),
        ("deployments", "statefulsets", "daemonsets", "replicasets"),
        tuple(WRITE),
    ),
    Permission(
        "Batch workloads of applications.",
        ("batch",),
        ("jobs", "cronjobs"),
        tuple(WRITE),
    ),
    Permission(
        "Network isolation and ingress of applications and policy templates.",
        ("networking.k8s.io",),
        ("networkpolicies", "ingresses"),
        tuple(WRITE),
    ),
    Permission(
        "Autoscaling and disruption budgets of applications.",
        ("autoscaling", "policy"),
        ("horizontalpodautoscalers", "poddisruptionbudgets"),
        tuple(WRITE),
    ),
    Permission(
        "Policy rules over access control and storage (read only: the agent grants nothing).",
        ("rbac.authorization.k8s.io", "storage.k8s.io"),
        ("roles", "rolebindings", "clusterroles", "clusterrolebindings", "storageclasses"),
        tuple(READ),
    ),
)


def _meta(name: str, namespace: str | None = NAMESPACE) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(PART_OF)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def rbac_objects() -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, ClusterRole and binding: the agent's identity."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, None)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(NAME, None),
            "rules": [permission.rule() for permission in AGENT_RULES],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(NAME, None),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
    ]


def agent_objects(*, hub: str, bootstrap_token: str, image: str) -> list[dict[str, Any]]:
    """Every object of the install, in the order `kubectl apply` needs them."""
    state = "/var/lib/keelson-agent"
    container = {
        "name": "agent",
        "image": image,
        "args": [
            "--hub",
            hub,
            "--state-dir",
            state,
            "--state-secret",
            f"{NAMESPACE}/{STATE_SECRET}",
        ],
        "env": [
            {
                "name": "KEELSON_BOOTSTRAP_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": BOOTSTRAP_SECRET, "key": "token"}},
            }
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "state", "mountPath": state},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  # the container's own
        ],
    }
    return [
        *rbac_objects(),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(BOOTSTRAP_SECRET),
            "type": "Opaque",
            "stringData": {"token": bootstrap_token},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(STATE_SECRET), "type": "Opaque"},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(NAME),
            "spec": {
                "replicas": 1,  # one agent per cluster: its token is the cluster's
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "template": {
                    "metadata": {"labels": dict(PART_OF)},
                    "spec": {
                        "serviceAccountName": NAME,
                        "automountServiceAccountToken": True,
                        "securityContext": {"runAsNonRoot": True, "fsGroup": 65532},
                        "containers": [container],
                        "volumes": [
                            {"name": "state", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
    ]


def as_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


# Push mode: the hub does in the cluster what the agent does in pull mode (collect,
# evaluate, enforce, propagate, clean up), so its ServiceAccount gets the same rules; the
# read-only variant (a cluster Keelson only observes) keeps get/list/watch of each.
PUSH_NAMESPACE = "keelson"
PUSH_NAME = "keelson-hub"
PUSH_TOKEN_SECRET = "keelson-hub-token"  # noqa: S105  # a Secret's name


def push_identity_objects(*, read_only: bool = False) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, ClusterRole, binding and a long-lived token Secret for
    registering a cluster in push mode when the user's own kubeconfig needs an exec
    plugin (EKS, GKE, AKS), which the hub refuses to run."""
    role = f"{PUSH_NAME}-read-only" if read_only else PUSH_NAME
    rules = [
        {**permission.rule(), "verbs": [v for v in permission.verbs if v in READ]}
        if read_only
        else permission.rule()
        for permission in AGENT_RULES
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(PUSH_NAMESPACE, None)},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(PUSH_NAME, PUSH_NAMESPACE),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(role, None),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(role, None),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": PUSH_NAME, "namespace": PUSH_NAMESPACE}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                **_meta(PUSH_TOKEN_SECRET, PUSH_NAMESPACE),
                "annotations": {"kubernetes.io/service-account.name": PUSH_NAME},
            },
            "type": "kubernetes.io/service-account-token",
        },
    ]


def push_identity_steps(hub: str, *, read_only: bool = False) -> str:
    """The commands that apply the identity and print what to paste into registration."""
    query = "?access=read-only" if read_only else ""
    return (
        f'curl -fsS -H "Authorization: Bearer $KEELSON_API_TOKEN" '
        f"{hub}/api/v1/clusters/push-identity-manifest/{query} | kubectl apply -f -\n"
        f"kubectl -n {PUSH_NAMESPACE} get secret {PUSH_TOKEN_SECRET} "
        "-o jsonpath='{.data.token}' | base64 -d   # the token\n"
        f"kubectl -n {PUSH_NAMESPACE} get secret {PUSH_TOKEN_SECRET} "
        "-o jsonpath='{.data.ca\\.crt}' | base64 -d   # the CA bundle\n"
        "kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'   # the URL"
    )
