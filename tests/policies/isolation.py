"""A namespace-isolation policy for tests on real API servers: a NetworkPolicy must exist
and a debug ConfigMap must not, in one namespace. Enforcing it applies the one and deletes
the other (both template rules: remediated, not denied)."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from accounts.models import Team
from clusters.models import Cluster
from policies.models import Policy
from policies.services.policies import PolicySpec, policy_create
from policies.tasks import policies_evaluate_batch_task

DEBUG, NETPOL = "debug-shell", "default-deny-ingress"


def isolation_policy(team: Team, namespace: str) -> Policy:
    """Inform: a NetworkPolicy must exist and the debug ConfigMap must not, in `namespace`."""
    match = {"namespaces": [namespace]}
    return policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name=f"isolation-{namespace}",
            rules=[
                {
                    "name": "default-deny",
                    "kind": "template",
                    "compliance_type": "musthave",
                    "match": match,
                    "object_template": {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "NetworkPolicy",
                        "metadata": {"name": NETPOL},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
                    },
                },
                {
                    "name": "no-debug-shell",
                    "kind": "template",
                    "compliance_type": "mustnothave",
                    "match": match,
                    "object_template": {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": DEBUG},
                    },
                },
            ],
        ),
    )


def expected_impact(namespace: str) -> set[tuple[str, str, str, str]]:
    """Worked out by hand: the debug ConfigMap is deleted, the NetworkPolicy applied."""
    return {
        ("delete", "ConfigMap", namespace, DEBUG),
        ("apply", "NetworkPolicy", namespace, NETPOL),
    }


def impact_objects(impact: dict[str, object]) -> set[tuple[str, str, str, str]]:
    """(effect, kind, namespace, name) of each object a cluster's enforce impact lists."""
    objects = impact["objects"]
    assert isinstance(objects, list)
    return {(o["effect"], o["kind"], o["namespace"], o["name"]) for o in objects}


def evaluate_worker(policy: Policy, *clusters: Cluster) -> None:
    """What the queued batch task does on a worker: evaluate (forced), then remediate
    where the policy enforces."""
    policies_evaluate_batch_task([c.pk for c in clusters], [policy.pk], True)


def add_debug(api: k8s.ApiClient, namespace: str) -> None:
    k8s.CoreV1Api(api).create_namespaced_config_map(namespace, {"metadata": {"name": DEBUG}})


def has_debug(api: k8s.ApiClient, namespace: str) -> bool:
    try:
        k8s.CoreV1Api(api).read_namespaced_config_map(DEBUG, namespace)
    except ApiException as error:
        assert error.status == 404
        return False
    return True


def netpols(api: k8s.ApiClient, namespace: str) -> list[str]:
    items = k8s.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items
    return [item.metadata.name for item in items]
