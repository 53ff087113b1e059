"""The agent without its hub: it keeps applying the last work it received and queues its
reports; when the hub answers again it sends them, trading a token that expired meanwhile
for a new one, without re-enrolment."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from accounts.models import Team
from agent.runner import HubUnavailable
from applications.models import ClusterWork, WorkState
from applications.propagation import work_target
from applications.services import application_create
from clusters.models import AgentToken, HealthSample
from clusters.services.registration import token_hash
from localkube.env import LocalCluster
from tests.agent.helpers import agent_run, dead_hub, enrolled, in_process
from tests.clusters.helpers import wait_for
from tests.placement.test_propagation import manifests

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def test_the_agent_rides_out_a_network_cut_longer_than_its_tokens_life(
    asgi_server: str, kube_cluster: LocalCluster, team: Team, tmp_path: Path
) -> None:
    # given a pull cluster whose agent applied an application
    state = tmp_path / "agent"
    cluster, _ = enrolled(asgi_server, kube_cluster, state, team=team)
    name = f"cut-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None, team=team, name=name, namespace=name, manifests=manifests()
    )
    work = work_target(application=application, cluster=cluster, version=1, replicas=1)
    agent_run(asgi_server, kube_cluster, state)
    apps = k8s.AppsV1Api(kube_cluster.control_plane.api_client())
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 1
    agent = in_process(asgi_server, kube_cluster, state)
    old = agent.state["agent_token"]
    samples = HealthSample.objects.filter(cluster=cluster).count()

    # when the hub is cut off for two heartbeats, and someone deletes the Deployment
    agent.hub = dead_hub()
    apps.delete_namespaced_deployment("web", name)
    for _ in range(2):
        with pytest.raises(HubUnavailable):
            agent.heartbeat()

    # then the agent put the Deployment back from its last work and queued its reports
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 1
    queued = agent.outbox()
    assert [entry["path"] for entry in queued] == ["agent/work", "agent/work"]
    assert queued[-1]["body"]["applications"][name]["version"] == "1"

    # when the hub comes back after the agent's token expired
    wait_for(
        lambda: (apps.read_namespaced_deployment("web", name).status.available_replicas or 0) == 1,
        timeout=60,
        what="the deployment to be available again",
    )
    AgentToken.objects.filter(token_hash=token_hash(old)).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    agent.hub = asgi_server
    agent.heartbeat()

    # then the agent traded its token without re-enrolment, sent what it queued and
    # heartbeats again; the old token is dead once the new one was used
    new = agent.state["agent_token"]
    assert new != old
    assert agent.outbox() == []
    assert HealthSample.objects.filter(cluster=cluster).count() == samples + 1
    assert AgentToken.objects.get(token_hash=token_hash(old)).revoked_at is not None
    work = ClusterWork.objects.get(pk=work.pk)
    assert work.state == WorkState.AVAILABLE
    assert (state / "agent.json").read_text().count(new) == 1

    # and it rotates by itself once half of its token's life has passed
    agent.state["token_issued_at"] = agent.state["token_issued_at"] - 10**9
    assert agent.rotate_if_due() is True
    assert agent.state["agent_token"] not in (old, new)
    agent.heartbeat()
    assert AgentToken.objects.get(token_hash=token_hash(new)).revoked_at is not None
    k8s.CoreV1Api(kube_cluster.control_plane.api_client()).delete_namespace(
        name, _preload_content=False
    )
