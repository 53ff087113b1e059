"""Applications through the REST API: a rollout run by a real Celery worker lands on a real
cluster and a delete removes it; changes are validated whole (nothing half-saved); roles
are enforced per application; versions and rollouts refuse what cannot be done; a pull-mode
cluster's agent fetches exactly its own rendered work."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from applications.models import (
    Application,
    ApplicationVersion,
    ClusterWork,
    PlacementDecision,
    WorkState,
)
from applications.propagation import work_target
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from clusters.services.registration import ClusterFields, agent_exchange, cluster_register_pull
from localkube.env import LocalCluster, LocalKubeEnv
from operations.choices import OperationState
from operations.models import Operation
from tests.clusters.helpers import register_local, wait_for
from tests.factories import add_member, make_team, make_user

APP_LABEL = "keelson.io/application"
MANAGED_BY = "app.kubernetes.io/managed-by"

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", resources: {requests: {cpu: 50m, memory: 32Mi}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


# ---------------------------------------------------------------------------- helpers


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def create_app(client: APIClient, team: str, name: str, **extra: Any) -> Any:
    body = {
        "name": name,
        "team": team,
        "namespace": name,
        "manifests": WEB,
        "placement": {"selector": "roll=yes"},
        **extra,
    }
    response = client.post("/api/v1/applications/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def wait_operation(client: APIClient, operation_id: str, *, timeout: float) -> dict[str, Any]:
    """Poll the operation through the API until it finishes; fail at once if it fails."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/operations/{operation_id}/")
        assert response.status_code == 200, response.content
        body = response.json()
        if body["state"] == OperationState.SUCCEEDED:
            return body
        if body["state"] in (OperationState.FAILED, OperationState.CANCELED):
            log = client.get(f"/api/v1/operations/{operation_id}/log/").json()
            pytest.fail(
                f"operation {body['kind']} ended {body['state']}: {body['error']}\n"
                + "\n".join(line["text"] for line in log)
            )
        time.sleep(1)
    pytest.fail(
        f"operation {operation_id} still {body.get('state')} after {timeout:.0f}s "
        f"(progress {body.get('progress')}, message {body.get('message')!r})"
    )


def read_deployment(local: LocalCluster, namespace: str, name: str = "web") -> Any:
    try:
        return k8s.AppsV1Api(local.control_plane.api_client()).read_namespaced_deployment(
            name, namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


# ------------------------------------------------- 1. end to end through a real worker


@pytest.fixture(scope="module")
def roll_cluster(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """A real cluster of this module's own."""
    local = kube_env.start_cluster("api-roll")
    yield local
    kube_env.stop_cluster("api-roll", remove_data=True)


@pytest.mark.kube
def test_rollout_and_delete_through_the_api_run_by_a_real_worker(
    roll_cluster: LocalCluster, celery_worker: subprocess.Popen[bytes]
) -> None:
    # given a team with a real, collected, Ready cluster labelled for the application
    team = make_team()
    cluster = register_local(roll_cluster, team=team)
    Cluster.objects.filter(pk=cluster.pk).update(labels={"roll": "yes"})
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    assert cluster.status == "ready", cluster.status_message
    operator = make_user()
    add_member(team, operator, Role.OPERATOR)
    client = client_for(operator)
    name = f"roll-{uuid.uuid4().hex[:6]}"
    created = create_app(client, team.name, name, placement={"selector": "roll=yes", "replicas": 2})
    assert created["version"] == 1

    # when it is rolled out through the API
    response = client.post(f"/api/v1/applications/{name}/rollout/", {}, format="json")

    # then an operation is accepted, and the worker brings it to success
    assert response.status_code == 202, response.content
    operation_id = response.json()["operation"]
    assert response.json()["state"] == OperationState.PENDING
    operation = wait_operation(client, operation_id, timeout=150)
    assert operation["kind"] == "application.rollout"
    assert operation["progress"] == 100
    assert operation["result"]["clusters"][cluster.name]["version"] == 1

    # and the status shows the cluster with every desired replica available
    status = client.get(f"/api/v1/applications/{name}/status/")
    assert status.status_code == 200
    rows = status.json()
    assert [row["cluster"] for row in rows] == [cluster.name]
    row = rows[0]
    assert row["state"] == WorkState.AVAILABLE
    assert row["desired_replicas"] == 2
    assert row["available_replicas"] == row["desired_replicas"]
    assert (row["desired_version"], row["applied_version"]) == (1, 1)
    assert {o["kind"] for o in row["applied_objects"]} == {"Namespace", "Deployment", "Service"}

    # and the cluster's own API has the Deployment, labelled as the application's
    live = read_deployment(roll_cluster, name)
    assert live is not None
    assert live.metadata.labels[APP_LABEL] == name
    assert live.spec.replicas == 2
    assert live.status.available_replicas == 2
    service = k8s.CoreV1Api(roll_cluster.control_plane.api_client()).read_namespaced_service(
        "web", name
    )
    assert service.metadata.labels[APP_LABEL] == name

    # when the application is deleted through the API
    deleted = client.delete(f"/api/v1/applications/{name}/")

    # then the removal is an operation the worker completes
    assert deleted.status_code == 202, deleted.content
    removal = wait_operation(client, deleted.json()["operation"], timeout=120)
    assert removal["kind"] == "application.delete"
    # and the Deployment has left the cluster and the application has left the API
    wait_for(
        lambda: read_deployment(roll_cluster, name) is None,
        timeout=60,
        what="the Deployment to be deleted from the cluster",
    )
    assert client.get(f"/api/v1/applications/{name}/").status_code == 404
    assert not Application.objects.filter(name=name).exists()
    assert not ClusterWork.objects.filter(cluster=cluster).exists()


# ------------------------------------------------------- 2.-4. API checks without workers


@pytest.fixture
def team() -> Team:
    return make_team(name="shop-team")


@pytest.fixture
def operator(team: Team) -> APIClient:
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    return client_for(user)


@pytest.fixture
def shop(operator: APIClient, team: Team) -> dict[str, Any]:
    return create_app(
        operator,
        team.name,
        "shop",
        description="v1 shop",
        overrides=[{"selector": "tier=edge", "image": "nginx:1.25-alpine"}],
        rollout={"strategy": "rolling", "max_concurrency": 2},
    )


@pytest.mark.django_db
def test_patch_refuses_bad_changes_whole_and_applies_good_ones(
    operator: APIClient, shop: dict[str, Any]
) -> None:
    before = operator.get("/api/v1/applications/shop/").json()

    # when the overrides are malformed
    response = operator.patch(
        "/api/v1/applications/shop/", {"overrides": [{"image": 3}]}, format="json"
    )
    # then 400 naming the field and the rule
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["overrides"] == ["Override 1: image must be a string"]

    # when the rollout strategy is unknown
    response = operator.patch(
        "/api/v1/applications/shop/", {"rollout": {"strategy": "blue-green"}}, format="json"
    )
    assert response.status_code == 400
    assert "strategy" in response.json()["error"]["fields"]
    assert "canary" in str(response.json()["error"]["fields"]["strategy"])

    # when the placement's selector does not parse
    response = operator.patch(
        "/api/v1/applications/shop/", {"placement": {"selector": "env in (a"}}, format="json"
    )
    assert response.status_code == 400
    assert "Invalid label selector" in str(response.json()["error"]["fields"]["selector"])

    # when a good placement comes with bad overrides, nothing of it is kept either
    response = operator.patch(
        "/api/v1/applications/shop/",
        {
            "description": "half",
            "placement": {"selector": "env=prod", "replicas": 3},
            "overrides": [{"replicas": -1}],
        },
        format="json",
    )
    assert response.status_code == 400
    assert "replicas must be 0 or more" in str(response.json()["error"]["fields"]["overrides"])

    # then nothing changed
    after = operator.get("/api/v1/applications/shop/").json()
    assert after == before
    assert after["placement"] == {"selector": "roll=yes"}
    assert after["description"] == "v1 shop"

    # when a good change comes
    good = {
        "description": "v2 shop",
        "placement": {"selector": "env=prod", "replicas": 3, "division": "static"},
        "overrides": [{"clusters": ["eu-1"], "replicas": 1}],
        "rollout": {"strategy": "canary", "canary_clusters": 1, "canary_soak_seconds": 5},
    }
    response = operator.patch("/api/v1/applications/shop/", good, format="json")
    # then it is answered and stored
    assert response.status_code == 200, response.content
    stored = operator.get("/api/v1/applications/shop/").json()
    for key, value in good.items():
        assert response.json()[key] == value
        assert stored[key] == value
    # and the namespace is not among what a PATCH changes
    operator.patch("/api/v1/applications/shop/", {"namespace": "x"}, format="json")
    assert operator.get("/api/v1/applications/shop/").json()["namespace"] == "shop"


@pytest.mark.django_db
def test_viewers_cannot_change_and_outsiders_cannot_see(team: Team, shop: dict[str, Any]) -> None:
    viewer_user = make_user()
    add_member(team, viewer_user, Role.VIEWER)
    viewer = client_for(viewer_user)
    outsider_user = make_user()
    add_member(make_team(), outsider_user, Role.ADMIN)  # an admin, of another team
    outsider = client_for(outsider_user)
    url = "/api/v1/applications/shop/"

    # a viewer reads
    assert viewer.get(url).status_code == 200
    assert viewer.get(url + "status/").status_code == 200
    assert [a["name"] for a in viewer.get("/api/v1/applications/").json()["results"]] == ["shop"]
    # but may not change, roll out or delete
    patch = viewer.patch(url, {"description": "mine"}, format="json")
    assert patch.status_code == 403
    assert "operator role" in patch.json()["error"]["message"]
    assert viewer.post(url + "rollout/", {}, format="json").status_code == 403
    assert viewer.delete(url).status_code == 403
    assert viewer.post(url + "versions/", {"manifests": WEB}, format="json").status_code == 403
    # and nothing happened
    assert viewer.get(url).json()["description"] == "v1 shop"
    assert not Operation.objects.exists()
    assert not PlacementDecision.objects.exists()
    assert Application.objects.filter(name="shop").exists()

    # an outsider does not even learn that it exists
    assert outsider.get(url).status_code == 404
    assert outsider.get(url + "status/").status_code == 404
    assert outsider.post(url + "rollout/", {}, format="json").status_code == 404
    assert outsider.patch(url, {"description": "x"}, format="json").status_code == 404
    assert outsider.delete(url).status_code == 404
    assert outsider.get("/api/v1/applications/").json()["results"] == []
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_versions_are_checked_per_document_and_listed_newest_first(
    operator: APIClient, shop: dict[str, Any]
) -> None:
    url = "/api/v1/applications/shop/versions/"
    # when the YAML does not parse, then 400 says where
    broken = operator.post(url, {"manifests": "kind: [Deployment\n"}, format="json")
    assert broken.status_code == 400
    assert "Not valid YAML at line" in str(broken.json()["error"]["fields"]["manifests"])
    # when a document is invalid, then 400 names the document
    invalid = operator.post(
        url, {"manifests": WEB + "---\nkind: ConfigMap\nmetadata: {name: c}\n"}, format="json"
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"]["fields"]["manifests"] == ["Document 3: apiVersion is missing"]
    # and no version was added
    assert [v["number"] for v in operator.get(url).json()] == [1]

    # when a valid version comes, then it is number 2
    added = operator.post(
        url, {"manifests": WEB.replace("nginx:1.25", "nginx:1.26")}, format="json"
    )
    assert added.status_code == 201, added.content
    assert added.json()["number"] == 2
    # and the history lists 2 then 1, each with its manifests
    history = operator.get(url).json()
    assert [v["number"] for v in history] == [2, 1]
    assert "nginx:1.26" in history[0]["manifests"] and "nginx:1.26" not in history[1]["manifests"]
    assert operator.get("/api/v1/applications/shop/").json()["version"] == 2


DEPLOYMENT_HEAD = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("manifests", "document"),
    [
        pytest.param(DEPLOYMENT_HEAD + "spec: [1]\n", "Document 1", id="spec-is-a-list"),
        pytest.param(
            DEPLOYMENT_HEAD + "spec: {template: {spec: {containers: [web]}}}\n",
            "Document 1",
            id="container-is-a-string",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: [a]}\n",
            "Document 1",
            id="labels-are-a-list",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x]}\n",
            "Document 2",
            id="name-is-a-list",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x]}\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x]}\n",
            "Document 1",
            id="name-is-a-list-twice",
        ),
    ],
)
def test_malformed_documents_are_refused_naming_the_document(
    operator: APIClient, shop: dict[str, Any], manifests: str, document: str
) -> None:
    # when a version's document has the wrong shape where a mapping or string belongs
    response = operator.post(
        "/api/v1/applications/shop/versions/", {"manifests": manifests}, format="json"
    )
    # then it is refused as invalid input naming the document (not a 500, not stored)
    assert response.status_code == 400, response.content[:300]
    assert document in str(response.json()["error"]["fields"]["manifests"])
    assert [v["number"] for v in operator.get("/api/v1/applications/shop/versions/").json()] == [1]


@pytest.mark.django_db
def test_rollout_refuses_an_unknown_version_and_a_second_rollout(
    operator: APIClient, shop: dict[str, Any]
) -> None:
    url = "/api/v1/applications/shop/rollout/"
    # when a version that does not exist is asked for
    response = operator.post(url, {"version": 99}, format="json")
    # then 400 names the version and nothing is decided or started
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["version"] == ["shop has no version 99."]
    assert not Operation.objects.exists()
    assert not PlacementDecision.objects.exists()

    # given a rollout that stays pending (no worker runs; nothing is committed)
    first = operator.post(url, {}, format="json")
    assert first.status_code == 202, first.content
    operation_id = first.json()["operation"]
    pending = operator.get(f"/api/v1/operations/{operation_id}/").json()
    assert (pending["kind"], pending["state"]) == ("application.rollout", "pending")
    assert pending["params"]["version"] == 1
    # when another rollout is asked for
    second = operator.post(url, {}, format="json")
    # then it is refused, naming the pending one
    assert second.status_code == 400
    assert operation_id in second.json()["error"]["message"]
    assert "in progress" in second.json()["error"]["message"]
    # and so is a delete while it runs
    delete = operator.delete("/api/v1/applications/shop/")
    assert delete.status_code == 400
    assert "cancel it first" in delete.json()["error"]["message"]
    assert Operation.objects.count() == 1
    assert PlacementDecision.objects.count() == 1
    assert operator.get("/api/v1/applications/shop/").status_code == 200


# ------------------------------------------------------------------------- 5. pull mode


@pytest.mark.django_db
def test_a_pull_agent_fetches_its_own_rendered_work_only(team: Team, operator: APIClient) -> None:
    # given two pull-mode clusters with their agents' tokens
    edge, bootstrap = cluster_register_pull(
        actor=None,
        fields=ClusterFields(name="edge-pull", team=team, labels={"tier": "edge"}),
    )
    _, token = agent_exchange(bootstrap_token=bootstrap)
    other, other_bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-other", team=team)
    )
    _, other_token = agent_exchange(bootstrap_token=other_bootstrap)
    # and an application whose work targets the first with a share of 3 replicas
    create_app(
        operator,
        team.name,
        "pulled",
        overrides=[{"selector": "tier=edge", "image": "nginx:1.25-alpine"}],
    )
    application = Application.objects.get(name="pulled")
    work_target(application=application, cluster=edge, version=1, replicas=3)
    assert ClusterWork.objects.get(cluster=edge).state == WorkState.PENDING

    # when its agent fetches its work
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = agent.get("/api/v1/agent/work")

    # then it gets the rendered objects: namespace first, its share, owner labels
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["cluster"] == "edge-pull"
    assert body["generation"]
    objects = body["objects"]
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Namespace", "pulled"),
        ("Deployment", "web"),
        ("Service", "web"),
    ]
    deployment = objects[1]
    assert deployment["metadata"]["namespace"] == "pulled"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["labels"][APP_LABEL] == "pulled"
    assert deployment["metadata"]["labels"][MANAGED_BY] == "keelson"
    assert deployment["metadata"]["annotations"]["keelson.io/application-version"] == "1"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "nginx:1.25-alpine"
    )  # the override for its labels
    assert objects[2]["spec"]["ports"][0]["protocol"] == "TCP"
    # and the work is recorded as delivered at the version
    work = ClusterWork.objects.get(cluster=edge)
    assert work.state == WorkState.DELIVERED
    assert work.applied_version == 1
    assert {o["kind"] for o in work.applied_objects} == {"Namespace", "Deployment", "Service"}
    status = operator.get("/api/v1/applications/pulled/status/").json()
    assert [(r["cluster"], r["state"]) for r in status] == [("edge-pull", "delivered")]
    # and fetching again without change gives the same generation
    assert agent.get("/api/v1/agent/work").json()["generation"] == body["generation"]

    # when the other cluster's agent fetches, then it sees none of it
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")
    elsewhere = stranger.get("/api/v1/agent/work")
    assert elsewhere.status_code == 200
    assert elsewhere.json()["cluster"] == "edge-other"
    assert elsewhere.json()["objects"] == []
    assert not ClusterWork.objects.filter(cluster=other).exists()
    # and a user's credentials are no agent's
    assert operator.get("/api/v1/agent/work").status_code == 401


@pytest.mark.django_db
def test_one_unrenderable_work_does_not_block_a_pull_agent(team: Team, operator: APIClient) -> None:
    # given a pull-mode cluster running two applications, one of whose stored versions
    # cannot be rendered (labels that are a list, as the version check lets through)
    edge, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-mixed", team=team)
    )
    _, token = agent_exchange(bootstrap_token=bootstrap)
    create_app(operator, team.name, "good")
    create_app(operator, team.name, "broken")
    broken = Application.objects.get(name="broken")
    ApplicationVersion.objects.create(
        application=broken,
        number=2,
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: [a]}\n",
    )
    work_target(
        application=Application.objects.get(name="good"), cluster=edge, version=1, replicas=1
    )
    work_target(application=broken, cluster=edge, version=2, replicas=1)
    # when the agent fetches its work
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = agent.get("/api/v1/agent/work")
    # then it still gets the good application, and the broken work is marked failed
    assert response.status_code == 200, response.content[:300]
    objects = response.json()["objects"]
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Namespace", "good"),
        ("Deployment", "web"),
        ("Service", "web"),
    ]
    assert {o["metadata"]["labels"].get(APP_LABEL) for o in objects[1:]} == {"good"}
    assert ClusterWork.objects.get(cluster=edge, application__name="good").state == (
        WorkState.DELIVERED
    )
    assert ClusterWork.objects.get(cluster=edge, application=broken).state == WorkState.FAILED
