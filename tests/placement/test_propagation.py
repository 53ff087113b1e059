"""Applications placed on real clusters (kube-apiservers with simulated nodes): they land
on exactly the chosen clusters and become available, divided replicas sum to the request,
overrides reach the right cluster, drift is corrected, removed objects are pruned, a canary
with a failing health gate rolls back, and a cluster that leaves the decision loses its
share (label change, or its API server stopped past the toleration)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from accounts.models import Team
from applications.models import Application, ClusterWork, WorkState
from applications.propagation import work_sync
from applications.reconcile import placement_reconcile
from applications.rollout import rollout_start
from applications.services import application_create, application_update, application_version_add
from clusters.choices import CredentialKind
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from clusters.services.credentials import credential_read, credential_store
from localkube.env import LocalCluster, LocalKubeEnv
from operations.choices import OperationState
from operations.models import Operation
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_team
from tests.placement.helpers import drive_rollout

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def manifests(*, image: str = "nginx:1.25", crash: bool = False, service: bool = True) -> str:
    annotations = '{"localkube.keelson.io/simulate": "crashloop"}' if crash else "{}"
    text = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {annotations}}}
    spec:
      containers:
      - {{name: web, image: "{image}", resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}
"""
    if service:
        text += """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""
    return text


@pytest.fixture(scope="module")
def members(kube_env: LocalKubeEnv) -> Iterator[dict[str, LocalCluster]]:
    """Two more real clusters beside member-1, for this module."""
    started = {name: kube_env.start_cluster(name) for name in ("place-a", "place-b")}
    yield started
    for name in started:
        kube_env.stop_cluster(name, remove_data=True)


def register(local: LocalCluster, team: Team, labels: dict[str, str]) -> Cluster:
    cluster = register_local(local, team=team)
    Cluster.objects.filter(pk=cluster.pk).update(labels=labels, region=f"r-{local.name}")
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    assert cluster.status == "ready", cluster.status_message
    return cluster


def apps_api(local: LocalCluster) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(local.control_plane.api_client())


def deployment(local: LocalCluster, namespace: str) -> Any:
    try:
        return apps_api(local).read_namespaced_deployment("web", namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def roll_out(application: Application, version: int | None = None) -> Operation:
    """What the rollout task does, run here (the Celery path is tested through the API)."""
    operation = rollout_start(application=application, actor=None, version=version)
    drive_rollout(operation)
    return operation


def new_app(team: Team, **kwargs: Any) -> Application:
    name = f"web-{uuid.uuid4().hex[:6]}"
    return application_create(
        actor=None, team=team, name=name, namespace=name, manifests=manifests(), **kwargs
    )


def test_lands_on_exactly_the_chosen_clusters_with_divided_replicas(
    members: dict[str, LocalCluster], kube_cluster: LocalCluster, settings: Any
) -> None:
    settings.KEELSON_PLACEMENT_DRIFT_INTERVAL = 0  # every reconcile re-applies
    # given three clusters of which two are labelled for the shop
    team = make_team()
    register(members["place-a"], team, {"shop": "yes"})
    register(members["place-b"], team, {"shop": "yes", "tier": "edge"})
    register(kube_cluster, team, {"shop": "no"})
    application = new_app(
        team,
        placement={
            "selector": "shop=yes",
            "replicas": 5,
            "division": "static",
            "static_weights": {"place-a": 4, "place-b": 1},
        },
        overrides=[{"selector": "tier=edge", "image": "nginx:1.25-alpine"}],
    )
    # when it is rolled out
    operation = roll_out(application)
    # then the operation succeeded and each chosen cluster runs its share, available
    assert operation.state == OperationState.SUCCEEDED, operation.error
    namespace = application.namespace
    a, b = deployment(members["place-a"], namespace), deployment(members["place-b"], namespace)
    assert (a.spec.replicas, b.spec.replicas) == (4, 1)
    assert a.spec.replicas + b.spec.replicas == 5
    assert (a.status.available_replicas, b.status.available_replicas) == (4, 1)
    assert a.spec.template.spec.containers[0].image == "nginx:1.25"
    assert b.spec.template.spec.containers[0].image == "nginx:1.25-alpine"  # the override
    assert a.metadata.labels["keelson.io/application"] == application.name
    assert deployment(kube_cluster, namespace) is None  # excluded by the selector
    works = {w.cluster.name: w for w in ClusterWork.objects.filter(application=application)}
    assert set(works) == {"place-a", "place-b"}
    assert works["place-a"].state == WorkState.AVAILABLE
    assert works["place-a"].available_replicas == 4
    assert {o["kind"] for o in works["place-a"].applied_objects} == {
        "Namespace",
        "Deployment",
        "Service",
    }

    # when someone edits what Keelson owns, then the next sync puts it back
    apps_api(members["place-a"]).patch_namespaced_deployment(
        "web", namespace, {"spec": {"replicas": 2}}
    )
    k8s.CoreV1Api(members["place-b"].control_plane.api_client()).delete_namespaced_service(
        "web",
        namespace,
        _preload_content=False,  # 1.20 answers a Status the client misreads
    )
    assert placement_reconcile(application=application) == "synced"
    assert deployment(members["place-a"], namespace).spec.replicas == 4
    k8s.CoreV1Api(members["place-b"].control_plane.api_client()).read_namespaced_service(
        "web", namespace
    )
    works = {w.cluster.name: w for w in ClusterWork.objects.filter(application=application)}
    assert works["place-a"].drift_corrections == 1
    assert works["place-b"].drift_corrections == 1
    assert "drift corrected" in works["place-a"].message

    # when a version drops the Service, then rolling it out prunes it
    application_version_add(actor=None, application=application, manifests=manifests(service=False))
    assert roll_out(application).state == OperationState.SUCCEEDED
    core = k8s.CoreV1Api(members["place-a"].control_plane.api_client())
    assert not core.list_namespaced_service(namespace).items
    assert (
        deployment(members["place-a"], namespace).metadata.annotations[
            "keelson.io/application-version"
        ]
        == "2"
    )

    # when place-b's labels no longer match, then reconciling moves its share away
    Cluster.objects.filter(name="place-b").update(labels={"shop": "no"})
    assert placement_reconcile(application=application) == "rescheduled"
    operation = Operation.objects.filter(kind="application.rollout").order_by("-created_at")[0]
    assert "left: place-b" in operation.params["reason"]
    drive_rollout(operation)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert deployment(members["place-a"], namespace).spec.replicas == 5
    wait_for(
        lambda: deployment(members["place-b"], namespace) is None,
        timeout=30,
        what="the deployment to leave place-b",
    )
    assert list(
        ClusterWork.objects.filter(application=application).values_list("cluster__name", flat=True)
    ) == ["place-a"]

    # when it matches again, then it joins and gets its share back
    Cluster.objects.filter(name="place-b").update(labels={"shop": "yes"})
    assert placement_reconcile(application=application) == "rescheduled"
    operation = Operation.objects.filter(kind="application.rollout").order_by("-created_at")[0]
    assert "joined: place-b" in operation.params["reason"]
    drive_rollout(operation)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    a, b = deployment(members["place-a"], namespace), deployment(members["place-b"], namespace)
    assert (a.spec.replicas, b.spec.replicas) == (4, 1)


def test_a_canary_that_fails_its_health_gate_rolls_back(
    members: dict[str, LocalCluster],
) -> None:
    # given version 1 running on both clusters, rolled out one cluster at a time
    team = make_team()
    register(members["place-a"], team, {"canary": "yes"})
    register(members["place-b"], team, {"canary": "yes"})
    application = new_app(
        team,
        placement={"selector": "canary=yes", "prioritizers": {}},
        rollout={
            "strategy": "canary",
            "canary_clusters": 1,
            "canary_soak_seconds": 2,
            "health_timeout_seconds": 25,
        },
    )
    assert roll_out(application).state == OperationState.SUCCEEDED
    # when version 2 crash-loops
    application_version_add(
        actor=None, application=application, manifests=manifests(image="nginx:bad", crash=True)
    )
    operation = roll_out(application)
    # then the rollout failed at the canary and the canary runs version 1 again
    assert operation.state == OperationState.FAILED
    assert "not available within 25s" in operation.error
    assert "rolled back 1 cluster" in operation.error
    namespace = application.namespace
    canary, rest = members["place-a"], members["place-b"]  # ranked by name: equal scores
    wait_for(
        lambda: (
            deployment(canary, namespace).spec.template.spec.containers[0].image == "nginx:1.25"
        ),
        timeout=10,
        what="the canary to be rolled back",
    )
    assert deployment(rest, namespace).spec.template.spec.containers[0].image == "nginx:1.25"
    works = {w.cluster.name: w for w in ClusterWork.objects.filter(application=application)}
    assert (works["place-a"].desired_version, works["place-a"].applied_version) == (1, 1)
    assert works["place-b"].desired_version == 1  # never touched
    wait_for(
        lambda: deployment(canary, namespace).status.available_replicas == 1,
        timeout=30,
        what="version 1 to be available again on the canary",
    )


def test_a_cluster_whose_api_server_stops_loses_its_replicas(
    kube_env: LocalKubeEnv, members: dict[str, LocalCluster]
) -> None:
    # given replicas divided over place-a and a cluster that will die
    doomed = kube_env.start_cluster("place-doomed")
    try:
        team = make_team()
        register(members["place-a"], team, {"ha": "yes"})
        dead = register(doomed, team, {"ha": "yes"})
        application = new_app(
            team,
            placement={
                "selector": "ha=yes",
                "replicas": 4,
                "division": "static",
                "unreachable_toleration_seconds": 120,
            },
        )
        assert roll_out(application).state == OperationState.SUCCEEDED
        assert deployment(doomed, application.namespace).spec.replicas == 2
        # when its API server stops and collection sees it gone (hysteresis: 3 probes)
        kube_env.stop_cluster("place-doomed")
        for _ in range(3):
            clusters_collect(cluster_ids=[dead.pk])
        dead.refresh_from_db()
        assert dead.status == "unreachable"
        # then within the toleration nothing moves
        assert placement_reconcile(application=application) == "synced"
        # and past it, its replicas move to place-a
        application_update(
            actor=None,
            application=application,
            changes={
                "placement": {**application.placement.spec, "unreachable_toleration_seconds": 0}
            },
        )
        assert placement_reconcile(application=application) == "rescheduled"
        operation = Operation.objects.filter(kind="application.rollout").order_by("-created_at")[0]
        drive_rollout(operation)
        assert operation.state == OperationState.SUCCEEDED, operation.error
        assert deployment(members["place-a"], application.namespace).spec.replicas == 4
        orphan = ClusterWork.objects.get(application=application, cluster=dead)
        assert orphan.state == WorkState.ORPHANED  # removal retried when it comes back
        assert "Cannot connect" in orphan.message
    finally:
        if "place-doomed" in kube_env.clusters:
            kube_env.stop_cluster("place-doomed", remove_data=True)


def test_an_unreachable_cluster_fails_the_sync_with_a_clear_message(
    members: dict[str, LocalCluster],
) -> None:
    # given a cluster whose API server address answers nothing
    team = make_team()
    cluster = register(members["place-b"], team, {"x": "y"})
    spec, _ = credential_read(cluster=cluster, purpose="test")
    credential_store(
        cluster=cluster,
        spec=dataclasses.replace(spec, server="https://127.0.0.1:1"),
        kind=CredentialKind.KUBECONFIG,
    )
    application = new_app(team, placement={"selector": "x=y"})
    work = ClusterWork.objects.create(application=application, cluster=cluster, desired_version=1)
    # when its work is synced, then it fails with the reason and records nothing as applied
    outcome = work_sync(work)
    assert not outcome.ok
    assert "Cannot connect" in outcome.message
    work.refresh_from_db()
    assert work.state == WorkState.FAILED
    assert work.applied_version is None
    assert "Cannot connect" in work.message
