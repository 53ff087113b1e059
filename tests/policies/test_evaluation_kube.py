"""Evaluation and enforcement against a real kube-apiserver (v1.20, CronJob in batch/v1beta1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from accounts.models import Team
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from kube.apply import apply_manifest
from localkube.env import LocalCluster
from policies.choices import ActionKind, ActionStatus, Mode, ResultStatus
from policies.models import EnforcementAction, Policy, PolicyEvaluation
from policies.services.enforcement import clusters_enforce, enforcement_preview
from policies.services.evaluation import cluster_evaluate
from policies.services.library import library_load
from policies.services.policies import PolicySpec, policy_create, policy_update
from tests.clusters.helpers import register_local
from tests.factories import make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
PRIVILEGED = {"securityContext": {"privileged": True}}


def _container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.25", **extra}


def _template(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [_container(**extra)]},
    }


@pytest.fixture
def namespace(kube_cluster: LocalCluster) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    name = f"pol-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def cluster(kube_cluster: LocalCluster, team: Team) -> Cluster:
    return register_local(kube_cluster, team=team, name=f"pol-{uuid.uuid4().hex[:6]}")


def _mine(row: PolicyEvaluation, namespace: str) -> set[tuple[str, str]]:
    return {(v["kind"], v["name"]) for v in row.violations if v["namespace"] == namespace}


def test_pss_baseline_reports_privileged_pods_and_controllers_by_name(
    kube_cluster: LocalCluster, namespace: str, team: Team, cluster: Cluster
) -> None:
    # given privileged and compliant pods, Deployments and a (v1beta1) CronJob
    api = kube_cluster.control_plane.api_client()
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    for name, extra in (("priv", PRIVILEGED), ("plain", {})):
        core.create_namespaced_pod(
            namespace, {"metadata": {"name": name}, "spec": {"containers": [_container(**extra)]}}
        )
        apps.create_namespaced_deployment(
            namespace,
            {
                "metadata": {"name": f"{name}-web"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": f"{name}-web"}},
                    "template": _template(f"{name}-web", **extra),
                },
            },
        )
    apply_manifest(
        api,
        {
            "apiVersion": "batch/v1beta1",
            "kind": "CronJob",
            "metadata": {"name": "priv-cron", "namespace": namespace},
            "spec": {
                "schedule": "0 3 * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            **_template("cron", **PRIVILEGED),
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [_container(**PRIVILEGED)],
                            },
                        }
                    }
                },
            },
        },
    )
    library_load(team=team)
    policy = Policy.objects.get(team=team, name="pss-baseline-privileged")

    # when the cluster is evaluated
    [row] = cluster_evaluate(cluster=cluster, policy_ids=[policy.pk], force=True)

    # then the privileged pod, Deployment and CronJob are named, the compliant ones are not
    assert row.status == ResultStatus.NONCOMPLIANT
    found = _mine(row, namespace)
    assert {("Pod", "priv"), ("Deployment", "priv-web"), ("CronJob", "priv-cron")} <= found
    assert not {name for _, name in found} & {"plain", "plain-web"}
    assert all("plain" not in name for _, name in found)
    assert row.policy_generation == policy.generation
    assert row.errors == []


def test_enforce_creates_missing_network_policy_and_removes_forbidden_object(
    kube_cluster: LocalCluster, namespace: str, team: Team, cluster: Cluster
) -> None:
    # given a namespace without a NetworkPolicy but with a forbidden ConfigMap
    api = kube_cluster.control_plane.api_client()
    core, net = k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "debug-shell"}})
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
                    "match": {"namespaces": [namespace]},
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
                    "match": {"namespaces": [namespace]},
                    "object_template": {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "debug-shell"},
                    },
                },
            ],
        ),
    )

    # when the impact is previewed
    [plan] = enforcement_preview(policy=policy)

    # then it lists both actions and changes nothing
    assert plan.error == ""
    assert {(f.action, f.kind, f.namespace, f.name) for f in plan.fixes} == {
        (ActionKind.APPLY, "NetworkPolicy", namespace, "default-deny-ingress"),
        (ActionKind.DELETE, "ConfigMap", namespace, "debug-shell"),
    }
    assert net.list_namespaced_network_policy(namespace).items == []
    core.read_namespaced_config_map("debug-shell", namespace)
    assert not EnforcementAction.objects.exists()

    # when the sweep evaluates (noncompliant) and then enforces
    [before] = cluster_evaluate(cluster=cluster, policy_ids=[policy.pk], force=True)
    assert before.status == ResultStatus.NONCOMPLIANT
    taken = clusters_enforce(cluster_ids=[cluster.pk])

    # then the NetworkPolicy exists, owned by Keelson and labelled with the policy,
    # the ConfigMap is gone, every action is recorded and the policy is now compliant
    assert taken == 2
    created = net.read_namespaced_network_policy("default-deny-ingress", namespace)
    assert created.spec.policy_types == ["Ingress"]
    assert created.metadata.labels["app.kubernetes.io/managed-by"] == "keelson"
    assert created.metadata.labels["keelson.io/policy"] == "isolation"
    assert any(m.manager == "keelson" for m in created.metadata.managed_fields)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("debug-shell", namespace)
    assert gone.value.status == 404
    actions = EnforcementAction.objects.filter(policy=policy, cluster=cluster)
    assert {(a.action, a.status, a.target["kind"], a.target["name"]) for a in actions} == {
        (ActionKind.APPLY, ActionStatus.SUCCEEDED, "NetworkPolicy", "default-deny-ingress"),
        (ActionKind.DELETE, ActionStatus.SUCCEEDED, "ConfigMap", "debug-shell"),
    }
    latest = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).first()
    assert latest is not None and latest.status == ResultStatus.COMPLIANT


def test_history_keeps_every_evaluation_and_unchanged_pairs_are_skipped(
    namespace: str, team: Team, cluster: Cluster
) -> None:
    # given a collected inventory and a policy over pods
    clusters_collect(cluster_ids=[cluster.pk])
    spec = PolicySpec(
        name="no-host-network",
        rules=[
            {
                "name": "host-network",
                "kind": "object",
                "match": {"kinds": ["Pod"], "namespaces": [namespace]},
                "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
            }
        ],
    )
    policy = policy_create(team=team, actor=None, spec=spec)
    rows = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster)

    # when evaluated, then again with nothing changed, then forced
    assert len(cluster_evaluate(cluster=cluster)) == 1
    assert cluster_evaluate(cluster=cluster) == []
    assert len(cluster_evaluate(cluster=cluster, force=True)) == 1
    # a policy change re-opens only that policy
    spec.description = "Pods must not share the node's network."
    policy = policy_update(policy=policy, spec=spec, actor=None)
    assert policy.generation == 2
    [changed] = cluster_evaluate(cluster=cluster)
    assert changed.policy_generation == 2
    # a new inventory re-opens it too; the same outcome is found again
    newest = rows.first()
    assert newest is not None
    clusters_collect(cluster_ids=[cluster.pk])
    [again] = cluster_evaluate(cluster=cluster)
    assert again.pk == newest.pk and again.evaluated_at == newest.evaluated_at

    # then each outcome is kept once, newest first; the re-check moved only its time and
    # stamp (no row per evaluation: a sweep of an unchanged fleet adds nothing)
    assert rows.count() == 3
    assert [r.forced for r in rows] == [False, True, False]
    assert all(r.status == ResultStatus.COMPLIANT for r in rows)
    rechecked = rows.get(pk=newest.pk)
    assert rechecked.checked_at and newest.checked_at
    assert rechecked.checked_at > newest.checked_at
    assert rechecked.inventory_stamp != newest.inventory_stamp
    assert rechecked.evaluated_at == newest.evaluated_at
    # and the next evaluation with nothing changed skips it again
    assert cluster_evaluate(cluster=cluster) == []


def test_an_unreachable_cluster_gives_error_results(team: Team) -> None:
    from tests.factories import make_cluster

    cluster = make_cluster(team=team, api_server_url="https://127.0.0.1:1")
    library_load(team=team)
    rows = cluster_evaluate(cluster=cluster)
    assert rows and all(r.status == ResultStatus.ERROR for r in rows)
    assert all("no stored credential" in r.message for r in rows)


def test_one_evaluation_per_cluster_at_a_time(team: Team) -> None:
    import psycopg2

    from policies.services.evaluation.locks import LOCK_CLASS
    from tests.factories import make_cluster
    from tests.support import child_database_url

    cluster = make_cluster(team=team)
    library_load(team=team)
    # given another worker (another connection) evaluating the cluster
    other = psycopg2.connect(child_database_url())
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, cluster.pk])
        # then this one leaves it alone
        assert cluster_evaluate(cluster=cluster, force=True) == []
        with other.cursor() as cursor:  # released now (a closed session frees it later)
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, cluster.pk])
    finally:
        other.close()
    # and once it is done, evaluation proceeds
    assert cluster_evaluate(cluster=cluster, force=True)


def test_a_sweep_stores_a_row_only_when_the_outcome_changes(
    kube_cluster: LocalCluster, namespace: str, team: Team, cluster: Cluster
) -> None:
    from policies.services.evaluation import clusters_evaluate

    # given a policy against privileged pods in the namespace, swept once
    spec = PolicySpec(
        name="no-privileged-here",
        rules=[
            {
                "name": "privileged",
                "kind": "object",
                "match": {"kinds": ["Pod"], "namespaces": [namespace]},
                "expression": "object.spec.containers.all(c, !has(c.securityContext)"
                " || !has(c.securityContext.privileged) || !c.securityContext.privileged)",
            }
        ],
    )
    policy = policy_create(team=team, actor=None, spec=spec)
    rows = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster)
    clusters_collect(cluster_ids=[cluster.pk])
    assert clusters_evaluate(cluster_ids=[cluster.pk]) == {ResultStatus.COMPLIANT: 1}
    first = rows.get()

    # when a new inventory re-opens it with nothing changed in the namespace
    clusters_collect(cluster_ids=[cluster.pk])
    assert clusters_evaluate(cluster_ids=[cluster.pk]) == {ResultStatus.COMPLIANT: 1}
    # then the same row is confirmed, not repeated
    confirmed = rows.get()
    assert confirmed.pk == first.pk
    assert confirmed.checked_at and first.checked_at and confirmed.checked_at > first.checked_at
    assert confirmed.inventory_stamp != first.inventory_stamp

    # and when a privileged pod appears, the new outcome is a new row
    k8s.CoreV1Api(kube_cluster.control_plane.api_client()).create_namespaced_pod(
        namespace,
        {"metadata": {"name": "priv"}, "spec": {"containers": [_container(**PRIVILEGED)]}},
    )
    clusters_collect(cluster_ids=[cluster.pk])
    assert clusters_evaluate(cluster_ids=[cluster.pk]) == {ResultStatus.NONCOMPLIANT: 1}
    assert [r.status for r in rows] == [ResultStatus.NONCOMPLIANT, ResultStatus.COMPLIANT]
    assert _mine(rows.first(), namespace) == {("Pod", "priv")}  # type: ignore[arg-type]
