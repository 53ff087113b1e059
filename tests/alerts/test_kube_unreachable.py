"""A real kube-apiserver stops: collection marks its cluster Unreachable and sends alerts
the cluster by task name through the real broker; the Unreachable alert fires once (one
notification however often it is re-evaluated) and resolves with one resolved
notification when the API server is back. Notifications are captured at the boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from kombu import Queue

from accounts.models import Team
from alerts.models import Alert
from alerts.services.lifecycle import groups_flush
from alerts.services.passes import alerts_periodic
from alerts.services.rules import RuleSpec, alert_rule_create
from alerts.tasks import alerts_clusters_changed_task
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from core.celery import EXCHANGE
from core.celery import app as celery_app
from localkube import LocalKubeEnv
from localkube.env import LocalCluster, default_nodes
from notifications.types import Notification
from tests.clusters.helpers import register_local, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(scope="module")
def alerting_cluster(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """A cluster of its own: this test stops its API server."""
    local = kube_env.start_cluster("alerts-1", nodes=default_nodes("alerts-1", count=1))
    yield local
    kube_env.stop_cluster("alerts-1", remove_data=True)


def _alerts_messages() -> list[dict[str, Any]]:
    """Take every message waiting in the broker's alerts queue: (task name, args)."""
    taken = []
    with celery_app.connection_for_read() as connection:
        queue = Queue("alerts", EXCHANGE, routing_key="alerts")(connection.default_channel)
        queue.declare()
        while (message := queue.get(no_ack=True)) is not None:
            taken.append({"task": message.headers["task"], "args": message.decode()[0]})
    return taken


def test_a_dead_api_server_fires_once_and_resolves(
    alerting_cluster: LocalCluster,
    team: Team,
    sent: list[Notification],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a Ready cluster and the default "cluster-unreachable" rule
    cluster = register_local(alerting_cluster, team=team)
    alert_rule_create(
        actor=None,
        team=team,
        spec=RuleSpec(name="cluster-unreachable", kind="cluster_status", severity="critical"),
    )

    def probe() -> Cluster:
        with django_capture_on_commit_callbacks(execute=True):
            clusters_collect(cluster_ids=[cluster.pk])
        cluster.refresh_from_db()
        return cluster

    assert probe().status == "ready"
    _alerts_messages()  # first sight (unknown → ready) was sent too: not this test's matter
    plane = alerting_cluster.control_plane
    # when its API server stops: three failed probes in a row mark it Unreachable
    plane.stop_component("kube-apiserver")
    try:
        for _ in range(3):
            probe()
        assert cluster.status == "unreachable"
        # then collection sent alerts the cluster, by name, through RabbitMQ
        messages = _alerts_messages()
        assert messages == [
            {"task": "alerts.tasks.alerts_clusters_changed_task", "args": [[cluster.pk]]}
        ]
        # a worker runs it (here, in this process), and the group notifies after its wait
        assert alerts_clusters_changed_task(*messages[0]["args"]) == 1
        alert = Alert.objects.get(cluster=cluster)
        groups_flush(now=timezone.now() + timedelta(seconds=10))  # past its 5 s wait
        assert [n.status for n in sent] == ["firing"]
        assert [i.labels["cluster"] for i in sent[0].alerts] == [cluster.name]
        assert "Cannot connect to" in sent[0].alerts[0].annotations["description"]
        # still dead at the next probes and periodic passes: no second alert, no repeat
        probe()
        alerts_periodic()
        assert Alert.objects.filter(cluster=cluster).count() == 1 and len(sent) == 1
    finally:
        plane.restart_apiserver()
    # when it is back: two good probes make it Ready, the alert resolves, told once
    wait_for(lambda: probe().status == "ready", timeout=120, what="the cluster to be Ready")
    for message in _alerts_messages():
        alerts_clusters_changed_task(*message["args"])
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.ends_at is not None
    groups_flush(now=timezone.now() + timedelta(minutes=5))  # past its group interval
    assert [n.status for n in sent] == ["firing", "resolved"]
    assert sent[1].group_key == sent[0].group_key
