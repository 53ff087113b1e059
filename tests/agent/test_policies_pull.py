"""Policies on pull clusters: the agent judges them with the hub's engine and the hub stores
the same results it computes for a push cluster. One real kube-apiserver is registered
twice, in push mode and in pull mode (its agent process running against a real hub)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from accounts.models import Team
from audit.models import AuditEvent
from clusters.services.collection import clusters_collect
from localkube.env import LocalCluster
from policies.choices import ActionKind, ActionStatus, Mode, ResultStatus
from policies.models import EnforcementAction, Policy, PolicyEvaluation
from policies.services.evaluation import cluster_evaluate
from policies.services.policies import PolicySpec, policy_create
from tests.agent.helpers import agent_run, enrolled, namespace, pod
from tests.clusters.helpers import register_local
from tests.factories import Member

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]
__all__ = ["namespace"]

COMPARED = (
    "status",
    "message",
    "violations",
    "errors",
    "violations_total",
    "errors_total",
    "objects_checked",
    "policy_generation",
    "digest",
)


def _policies(team: Team, namespace: str) -> list[Policy]:
    """An object rule (with controllers through autogen), a template rule and cluster
    rules, all limited to the test's namespace where they read objects."""
    where = {"namespaces": [namespace]}
    specs = [
        PolicySpec(
            name="no-host-network",
            rules=[
                {
                    "name": "host-network",
                    "kind": "object",
                    "match": {"kinds": ["Pod"], **where},
                    "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
                    "message": "Pods must not use the node's network.",
                }
            ],
        ),
        PolicySpec(
            name="default-deny",
            rules=[
                {
                    "name": "default-deny",
                    "kind": "template",
                    "compliance_type": "musthave",
                    "match": where,
                    "object_template": {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "NetworkPolicy",
                        "metadata": {"name": "default-deny-ingress"},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
                    },
                }
            ],
        ),
        PolicySpec(
            name="cluster-shape",
            rules=[
                {"name": "recent", "kind": "cluster", "expression": "cluster.version.minor >= 20"},
                {"name": "big", "kind": "cluster", "expression": "cluster.nodeCount >= 5"},
            ],
        ),
    ]
    return [policy_create(team=team, actor=None, spec=spec) for spec in specs]


def _row(policy: Policy, cluster_id: int) -> dict[str, Any]:
    row = PolicyEvaluation.objects.filter(policy=policy, cluster_id=cluster_id).first()
    assert row is not None, f"no result of {policy.name}"
    return {field: getattr(row, field) for field in COMPARED}


def test_a_pull_cluster_gets_the_results_the_hub_computes_in_push_mode(
    asgi_server: str,
    kube_cluster: LocalCluster,
    namespace: str,
    team: Team,
    owner: Member,
    tmp_path: Path,
) -> None:
    # given pods and a Deployment, one of each on the node's network, in a namespace
    # without a NetworkPolicy
    api = kube_cluster.control_plane.api_client()
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    core.create_namespaced_pod(namespace, pod("host", hostNetwork=True))
    core.create_namespaced_pod(namespace, pod("plain"))
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "host-web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "host-web"}},
                "template": {
                    **pod("x", hostNetwork=True),
                    "metadata": {"labels": {"app": "host-web"}},
                },
            },
        },
    )
    # and policies, and the same cluster registered in push mode and in pull mode
    policies = _policies(team, namespace)
    push = register_local(kube_cluster, team=team, name="twin-push")
    clusters_collect(cluster_ids=[push.pk])

    # when the hub evaluates the push cluster and the agent (enrolling) its pull cluster
    assert len(cluster_evaluate(cluster=push, policy_ids=[p.pk for p in policies], force=True)) == 3
    pull, log = enrolled(asgi_server, kube_cluster, tmp_path / "agent", team=team, name="twin-pull")
    assert "policies: 3 evaluated, 3 stored" in log

    # then every result of the pull cluster is the push cluster's, digest included (but
    # where a cluster rule's violation names the cluster itself)
    for policy in policies[:2]:
        assert _row(policy, pull.pk) == _row(policy, push.pk), policy.name
    renamed = _row(policies[2], push.pk)
    renamed["violations"] = [{**v, "name": "twin-pull"} for v in renamed["violations"]]
    assert {**_row(policies[2], pull.pk), "digest": ""} == {**renamed, "digest": ""}
    host = _row(policies[0], pull.pk)
    assert host["status"] == ResultStatus.NONCOMPLIANT
    named = {(v["kind"], v["name"]) for v in host["violations"]}
    assert {("Pod", "host"), ("Deployment", "host-web")} <= named
    assert ("Pod", "plain") not in named
    assert _row(policies[1], pull.pk)["status"] == ResultStatus.NONCOMPLIANT
    shape = _row(policies[2], pull.pk)
    assert shape["status"] == ResultStatus.NONCOMPLIANT  # two nodes, not five
    assert [v["rule"] for v in shape["violations"]] == ["big"]
    # and the API lists it as any cluster's result; no "not evaluated" error remains
    listed = owner.api.get("/api/v1/policy-evaluations/", {"cluster": "twin-pull"}).json()
    assert {r["status"] for r in listed["results"]} == {ResultStatus.NONCOMPLIANT}
    assert not PolicyEvaluation.objects.filter(message__contains="Pull-mode").exists()

    # when the agent runs again with nothing changed, then nothing new is stored
    again = agent_run(asgi_server, kube_cluster, tmp_path / "agent")
    assert "policies:" not in again  # fetched again only after POLICY_POLL seconds
    assert PolicyEvaluation.objects.filter(cluster_id=pull.pk).count() == 3


def test_the_agent_enforces_templates_with_server_side_apply(
    asgi_server: str, kube_cluster: LocalCluster, namespace: str, team: Team, tmp_path: Path
) -> None:
    # given a pull cluster with a forbidden ConfigMap, and an enforce-mode policy
    api = kube_cluster.control_plane.api_client()
    core, net = k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "debug-shell"}})
    where = {"namespaces": [namespace]}
    policy = policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="isolation",
            mode=Mode.ENFORCE,
            rules=[
                {
                    "name": "default-deny",
                    "kind": "template",
                    "compliance_type": "musthave",
                    "match": where,
                    "object_template": {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "NetworkPolicy",
                        "metadata": {"name": "default-deny-ingress"},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
                    },
                },
                {
                    "name": "no-debug-shell",
                    "kind": "template",
                    "compliance_type": "mustnothave",
                    "match": where,
                    "object_template": {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "debug-shell"},
                    },
                },
            ],
        ),
    )

    # when its agent enrolls and runs
    cluster, log = enrolled(asgi_server, kube_cluster, tmp_path / "agent", team=team)

    # then the agent made the cluster compliant, as the hub's enforcement would have
    assert "2 enforcement action(s)" in log
    created = net.read_namespaced_network_policy("default-deny-ingress", namespace)
    assert created.metadata.labels["app.kubernetes.io/managed-by"] == "keelson"
    assert created.metadata.labels["keelson.io/policy"] == "isolation"
    assert any(m.manager == "keelson" for m in created.metadata.managed_fields)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("debug-shell", namespace)
    assert gone.value.status == 404
    # and the hub recorded each action, audited them and stores the result after the fix
    actions = EnforcementAction.objects.filter(policy=policy, cluster=cluster)
    assert {(a.action, a.status, a.target["kind"], a.target["name"]) for a in actions} == {
        (ActionKind.APPLY, ActionStatus.SUCCEEDED, "NetworkPolicy", "default-deny-ingress"),
        (ActionKind.DELETE, ActionStatus.SUCCEEDED, "ConfigMap", "debug-shell"),
    }
    event = AuditEvent.objects.get(action="policy.enforce")
    assert event.detail["trigger"] == "agent"
    assert event.detail["cluster"] == cluster.name
    latest = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).first()
    assert latest is not None and latest.status == ResultStatus.COMPLIANT
