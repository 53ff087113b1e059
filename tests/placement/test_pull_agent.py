"""Pull mode end to end: a real agent process fetches its cluster's work from a real hub,
applies it to a real cluster, reports the workloads' status back, and prunes what the hub
no longer lists."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s

from applications.models import ClusterWork, WorkState
from applications.propagation import work_refresh, work_remove, work_target
from applications.services import application_create
from clusters.services.registration import ClusterFields, cluster_register_pull
from localkube.env import LocalCluster
from tests.clusters.helpers import wait_for
from tests.clusters.test_agent import _agent
from tests.factories import make_team
from tests.placement.test_propagation import manifests

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def test_a_pull_agent_applies_reports_and_prunes_its_work(
    asgi_server: str, kube_cluster: LocalCluster, tmp_path: Path
) -> None:
    # given a pull cluster whose agent has enrolled, and an application targeting it
    team = make_team()
    cluster, token = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-pull", team=team, provider="edge")
    )
    kubeconfig = kube_cluster.control_plane.write_kubeconfig()
    state = tmp_path / "agent"
    enrolled = _agent(asgi_server, kubeconfig, state, "--token", token)
    assert enrolled.returncode == 0, enrolled.stderr
    name = f"pull-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None, team=team, name=name, namespace=name, manifests=manifests()
    )
    work = work_target(application=application, cluster=cluster, version=1, replicas=2)
    assert not work_refresh(work).complete  # nothing reported yet
    apps = k8s.AppsV1Api(kube_cluster.control_plane.api_client())

    # when the agent runs, then the work is in the cluster and its status reaches the hub
    first = _agent(asgi_server, kubeconfig, state)
    assert first.returncode == 0, first.stderr
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 2
    wait_for(
        lambda: (apps.read_namespaced_deployment("web", name).status.available_replicas or 0) == 2,
        timeout=60,
        what="the deployment to be available",
    )
    second = _agent(asgi_server, kubeconfig, state)
    assert second.returncode == 0, second.stderr
    work.refresh_from_db()
    assert work.state == WorkState.AVAILABLE
    assert (work.desired_replicas, work.available_replicas) == (2, 2)
    assert work_refresh(work).complete  # what a rollout waits for

    # when the application leaves the cluster, then the agent's next run removes it
    assert work_remove(work).ok
    assert not ClusterWork.objects.filter(pk=work.pk).exists()
    third = _agent(asgi_server, kubeconfig, state)
    assert third.returncode == 0, third.stderr
    assert not apps.list_namespaced_deployment(name).items
    k8s.CoreV1Api(kube_cluster.control_plane.api_client()).delete_namespace(
        name, _preload_content=False
    )
