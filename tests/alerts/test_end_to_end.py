"""Issue 24's end-to-end: a real kube-apiserver stops, its cluster goes Unreachable, and ONE
grouped notification reaches e-mail (aiosmtpd), a signed webhook and Debian's Alertmanager;
the API server comes back and a resolved notification reaches all three; a silence then
keeps the next incident quiet. Collection, alerts, grouping and delivery are the product's
own code; the steps a worker would run are called in this process, in the order the
broker would hand them over."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import Message
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Team
from alerts.models import Alert
from alerts.services.lifecycle import groups_flush
from alerts.services.passes import alerts_on_clusters
from alerts.services.rules import RuleSpec, alert_rule_create
from alerts.services.silences import silence_create
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from localkube import LocalKubeEnv
from localkube.env import LocalCluster, default_nodes
from notifications.choices import DeliveryState
from notifications.delivery import delivery_attempt
from notifications.models import Delivery
from notifications.payloads import signature_valid
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_user
from tests.notifications.conftest import Alertmanager, Mailbox, Receiver
from tests.notifications.helpers import HMAC_SECRET, make_channel

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(scope="module")
def dying_cluster(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """A cluster of its own: this test stops its API server twice."""
    local = kube_env.start_cluster("alerts-e2e", nodes=default_nodes("alerts-e2e", count=1))
    yield local
    kube_env.stop_cluster("alerts-e2e", remove_data=True)


def _text(mail: Message) -> str:
    """The plain-text part of a received message, decoded."""
    for part in mail.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text/plain part")


def _deliver_pending() -> list[str]:
    """What the notifications workers do with the deliveries queued so far."""
    pending = Delivery.objects.filter(state=DeliveryState.PENDING).order_by("pk")
    return [delivery_attempt(delivery_id=pk) for pk in pending.values_list("pk", flat=True)]


def test_a_dead_cluster_is_told_once_everywhere_then_resolved_then_silenced(
    dying_cluster: LocalCluster,
    team: Team,
    smtp: Mailbox,
    receiver: Receiver,
    alertmanager: Alertmanager,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a Ready cluster, the cluster-status rule, and three channels of the team
    cluster = register_local(dying_cluster, team=team)
    alert_rule_create(
        actor=None,
        team=team,
        spec=RuleSpec(name="cluster-unreachable", kind="cluster_status", severity="critical"),
    )
    make_channel(team, "email", recipients=["oncall@payments.example"])
    make_channel(team, "webhook", url=f"{receiver.url}/hook", hmac_secret=HMAC_SECRET)
    make_channel(team, "alertmanager", url=alertmanager.url)

    def probe() -> Cluster:
        with django_capture_on_commit_callbacks(execute=False):
            clusters_collect(cluster_ids=[cluster.pk])
        cluster.refresh_from_db()
        return cluster

    def evaluate_and_flush(after: timedelta) -> None:
        alerts_on_clusters(cluster_ids=[cluster.pk])  # the task collection sends by name
        groups_flush(now=timezone.now() + after)

    assert probe().status == "ready"
    plane = dying_cluster.control_plane

    # when its API server stops: three failed probes make it Unreachable
    plane.stop_component("kube-apiserver")
    try:
        for _ in range(3):
            probe()
        assert cluster.status == "unreachable"
        evaluate_and_flush(timedelta(seconds=10))  # past the group's 5 s wait
        assert _deliver_pending() == [DeliveryState.DELIVERED] * 3
        # then one message per channel, each naming the cluster
        assert len(smtp.messages) == 1
        recipients, mail = smtp.messages[0]
        assert recipients == ["oncall@payments.example"]
        assert "FIRING" in str(mail["Subject"]) and cluster.name in _text(mail)
        (hook,) = receiver.requests
        assert signature_valid(HMAC_SECRET, hook.body, hook.headers["X-Keelson-Signature"])
        body = json.loads(hook.body)
        assert body["status"] == "firing"
        assert [a["labels"]["cluster"] for a in body["alerts"]] == [cluster.name]
        firing = alertmanager.alerts()
        assert [a["labels"]["cluster"] for a in firing] == [cluster.name]
        assert firing[0]["status"]["state"] == "active"
        # still dead at the next probe and evaluation: nothing more is sent
        probe()
        evaluate_and_flush(timedelta(seconds=10))
        assert _deliver_pending() == []
        assert Alert.objects.filter(cluster=cluster).count() == 1
    finally:
        plane.restart_apiserver()

    # when it is back: Ready again, and the resolved notification reaches all three
    wait_for(lambda: probe().status == "ready", timeout=120, what="the cluster to be Ready")
    evaluate_and_flush(timedelta(minutes=6))  # past the group interval
    assert _deliver_pending() == [DeliveryState.DELIVERED] * 3
    assert len(smtp.messages) == 2
    resolved_mail = smtp.messages[1][1]
    assert "RESOLVED" in str(resolved_mail["Subject"]) and cluster.name in _text(resolved_mail)
    assert json.loads(receiver.requests[1].body)["status"] == "resolved"
    wait_for(
        lambda: alertmanager.alerts() == [],
        timeout=30,
        what="Alertmanager to drop the resolved alert",
    )

    # when an operator silences the cluster and it dies again: nothing is sent
    operator = make_user()
    silence_create(
        actor=operator,
        team=team,
        matchers=[f'cluster="{cluster.name}"'],
        comment="planned maintenance, CHG-1234",
        ends_at=timezone.now() + timedelta(hours=1),
    )
    plane.stop_component("kube-apiserver")
    try:
        for _ in range(3):
            probe()
        assert cluster.status == "unreachable"
        evaluate_and_flush(timedelta(seconds=10))
        assert _deliver_pending() == []
        assert len(smtp.messages) == 2 and len(receiver.requests) == 2
        assert Alert.objects.filter(cluster=cluster, ends_at=None).count() == 1  # recorded
    finally:
        plane.restart_apiserver()
    wait_for(lambda: probe().status == "ready", timeout=120, what="the cluster to be Ready")
