"""Deregistering a pull cluster with cleanup: its agent removes what Keelson applied and
reports, then the hub revokes it; a silent agent is revoked after the timeout with what
may be left listed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from accounts.models import Team
from applications.models import ClusterWork
from applications.propagation import work_target
from applications.services import application_create
from audit.models import AuditEvent
from clusters.models import AgentToken, Cluster
from clusters.services.lifecycle import cluster_deregister, cluster_deregister_run
from clusters.services.pullcleanup import agent_instruction, pull_cleanups_expire
from clusters.services.registration import ClusterFields, agent_exchange, cluster_register_pull
from kube.apply import apply_manifest
from kube.ownership import MANAGED_SELECTOR
from localkube.env import LocalCluster
from operations.choices import OperationState
from operations.models import Operation
from policies.choices import ActionKind, ActionStatus
from policies.models import EnforcementAction
from policies.services.policies import PolicySpec, policy_create
from tests.agent.helpers import enrolled
from tests.clusters.test_agent import _agent
from tests.placement.test_propagation import manifests


@pytest.mark.kube
@pytest.mark.django_db(transaction=True)
def test_deregistration_with_cleanup_runs_through_the_agent(
    asgi_server: str, kube_cluster: LocalCluster, team: Team, tmp_path: Path
) -> None:
    # given a pull cluster whose agent applied an application, and another object of
    # Keelson's (as enforcement writes them)
    state = tmp_path / "agent"
    cluster, _ = enrolled(asgi_server, kube_cluster, state, team=team)
    name = f"gone-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None, team=team, name=name, namespace=name, manifests=manifests()
    )
    work_target(application=application, cluster=cluster, version=1, replicas=1)
    kubeconfig = kube_cluster.control_plane.write_kubeconfig()
    assert _agent(asgi_server, kubeconfig, state).returncode == 0
    api = kube_cluster.control_plane.api_client()
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 1
    apply_manifest(
        api,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "marker", "namespace": name},
        },
    )

    # when it is deregistered with cleanup
    operation = cluster_deregister(cluster=cluster, actor=None, cleanup=True)
    cluster_deregister_run(operation_id=operation.pk)

    # then the operation waits for the agent, which is told to clean up
    operation.refresh_from_db()
    assert operation.state == OperationState.RUNNING
    assert "Waiting for the agent" in operation.message
    assert agent_instruction(cluster=cluster) == {"cleanup": {"operation": str(operation.pk)}}

    # when the agent runs
    run = _agent(asgi_server, kubeconfig, state)

    # then it removed every object of Keelson's, reported, and the hub let it go
    assert run.returncode == 0, run.stderr
    assert "the cluster is deregistered" in run.stderr
    assert not apps.list_deployment_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    assert not core.list_config_map_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    assert not core.list_service_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED
    assert {f"Deployment/{name}/web", f"ConfigMap/{name}/marker"} <= set(
        operation.result["deleted"]
    )
    assert not Cluster.objects.filter(pk=cluster.pk).exists()
    event = AuditEvent.objects.get(action="cluster.deregister")
    assert event.detail["agent_reported"] is True
    # and the agent forgot its credential: it cannot come back without a new enrolment
    assert not (state / "agent.json").exists()
    assert _agent(asgi_server, kubeconfig, state).returncode == 3


@pytest.mark.django_db
def test_a_silent_agent_is_revoked_after_the_timeout_with_the_leftovers_listed(
    team: Team,
) -> None:
    # given a pull cluster holding an application's objects and an enforcement's
    cluster, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-silent", team=team)
    )
    _, token = agent_exchange(bootstrap_token=bootstrap)
    application = application_create(
        actor=None, team=team, name="shop", namespace="shop", manifests=manifests()
    )
    work = work_target(application=application, cluster=cluster, version=1, replicas=1)
    ClusterWork.objects.filter(pk=work.pk).update(
        applied_objects=[
            {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"}
        ]
    )
    rule = {"name": "recent", "kind": "cluster", "expression": "cluster.version.minor >= 20"}
    policy = policy_create(team=team, actor=None, spec=PolicySpec(name="iso", rules=[rule]))
    EnforcementAction.objects.create(
        policy=policy,
        cluster=cluster,
        rule_name="default-deny",
        run_id=uuid.uuid4(),
        action=ActionKind.APPLY,
        status=ActionStatus.SUCCEEDED,
        target={
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "namespace": "shop",
            "name": "default-deny-ingress",
        },
    )
    operation = cluster_deregister(cluster=cluster, actor=None, cleanup=True)
    cluster_deregister_run(operation_id=operation.pk)

    # when the agent stays silent for less than the timeout (900 s), nothing happens
    soon = timezone.now() + timedelta(seconds=600)
    assert pull_cleanups_expire(now=soon) == 0
    assert Cluster.objects.filter(pk=cluster.pk).exists()

    # when it stays silent past it
    assert pull_cleanups_expire(now=timezone.now() + timedelta(seconds=901)) == 1

    # then the agent is revoked, the cluster removed and what may be left is listed
    operation = Operation.objects.get(pk=operation.pk)
    assert operation.state == OperationState.SUCCEEDED
    assert operation.result["leftovers"] == [
        "Deployment/shop/web",
        "NetworkPolicy/shop/default-deny-ingress",
    ]
    assert "2 objects may be left" in operation.message
    assert not Cluster.objects.filter(pk=cluster.pk).exists()
    assert not AgentToken.objects.filter(cluster_id=cluster.pk).exists()
    event = AuditEvent.objects.get(action="cluster.deregister")
    assert event.detail["agent_reported"] is False
    assert event.detail["agents_revoked"] == 1
    assert token not in str(event.detail)
