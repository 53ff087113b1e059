"""Rollouts under failure: a worker killed with SIGKILL mid-rollout (the task is redelivered
and the same operation finishes once, with nothing applied twice), and a member cluster's
API server dying mid-rollout (the rollout stops with the reason and rolls back; a later
rollout completes once the cluster is back)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from applications.models import ClusterWork, PlacementDecision
from applications.rollout import rollout_start
from applications.services import application_create, application_version_add
from core.celery import app as celery_app
from localkube.env import LocalCluster, LocalKubeEnv
from operations.models import Operation
from tests.clusters.helpers import wait_for
from tests.conftest import start_worker, stop_worker
from tests.factories import make_team
from tests.placement.helpers import drive_rollout
from tests.placement.test_propagation import deployment, manifests, register

pytestmark = [pytest.mark.kube]


@pytest.fixture(scope="module")
def pair(kube_env: LocalKubeEnv) -> Iterator[dict[str, LocalCluster]]:
    started = {name: kube_env.start_cluster(name) for name in ("chaos-a", "chaos-b")}
    yield started
    for name in started:
        kube_env.stop_cluster(name, remove_data=True)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_rollout_finishes_it_once(pair: dict[str, LocalCluster]) -> None:
    # given two clusters rolled one at a time, and a worker
    team = make_team()
    register(pair["chaos-a"], team, {"chaos": "yes"})
    register(pair["chaos-b"], team, {"chaos": "yes"})
    name = f"web-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=manifests(),
        placement={"selector": "chaos=yes", "replicas": 2, "prioritizers": {}},
        rollout={"strategy": "rolling", "max_concurrency": 1, "health_timeout_seconds": 90},
    )
    celery_app.control.purge()
    first = start_worker("rollout-a")
    second = None
    try:
        operation = rollout_start(application=application, actor=None)
        # when the worker dies after the first cluster was applied
        wait_for(
            lambda: operation.log_lines.filter(text__startswith="chaos-a: applied").exists(),
            timeout=60,
            what="the first cluster to be applied",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert Operation.objects.get(pk=operation.pk).state == "running"
        # then another worker gets the task again and finishes the same operation
        second = start_worker("rollout-b")
        wait_for(
            lambda: Operation.objects.get(pk=operation.pk).state in ("succeeded", "failed"),
            timeout=150,
            what="the rollout to end",
        )
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    # and nothing was done twice: one decision, one work per cluster, one deployment each
    assert PlacementDecision.objects.filter(application=application).count() == 1
    works = ClusterWork.objects.filter(application=application)
    assert sorted(works.values_list("cluster__name", flat=True)) == ["chaos-a", "chaos-b"]
    assert all(w.applied_version == 1 and w.previous_version is None for w in works)
    for local in pair.values():
        listed = k8s.AppsV1Api(local.control_plane.api_client()).list_namespaced_deployment(name)
        assert [d.metadata.name for d in listed.items] == ["web"]
        assert listed.items[0].spec.replicas == 2
    assert operation.log_lines.filter(text__startswith="Version 1 available").count() == 1


@pytest.mark.django_db
def test_an_api_server_dying_mid_rollout_stops_and_rolls_back(
    pair: dict[str, LocalCluster],
) -> None:
    # given version 1 on both clusters
    team = make_team()
    register(pair["chaos-a"], team, {"dying": "yes"})
    register(pair["chaos-b"], team, {"dying": "yes"})
    name = f"web-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=manifests(),
        placement={"selector": "dying=yes", "prioritizers": {}},
        rollout={"strategy": "rolling", "max_concurrency": 1, "health_timeout_seconds": 60},
    )
    first = rollout_start(application=application, actor=None)
    drive_rollout(first)
    assert first.state == "succeeded", first.error
    application_version_add(
        actor=None, application=application, manifests=manifests(image="nginx:1.26")
    )
    # when chaos-b's API server dies before its turn in the rollout of version 2
    pair["chaos-b"].control_plane.stop_component("kube-apiserver")
    try:
        operation = rollout_start(application=application, actor=None)
        drive_rollout(operation)
        # then the rollout failed naming the cluster, and chaos-a is back on version 1
        assert operation.state == "failed"
        assert "failed: chaos-b: " in operation.error
        assert "Cannot connect to the API server" in operation.error
        assert "rolled back 1 cluster(s)" in operation.error
        assert "could not roll back chaos-b" in operation.error
        image = deployment(pair["chaos-a"], name).spec.template.spec.containers[0].image
        assert image == "nginx:1.25"
        work = ClusterWork.objects.get(application=application, cluster__name="chaos-a")
        assert work.applied_version == 1
    finally:
        pair["chaos-b"].control_plane.restart_apiserver()
    # and once it is back, the same version rolls out everywhere
    again = rollout_start(application=application, actor=None)
    drive_rollout(again)
    assert again.state == "succeeded", again.error
    for local in pair.values():
        assert deployment(local, name).spec.template.spec.containers[0].image == "nginx:1.26"
