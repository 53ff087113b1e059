"""Applications API: manifests checked per document, simulation explains every exclusion,
decisions are stored with versions."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from applications.models import Application, PlacementDecision
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", resources: {requests: {cpu: 500m, memory: 256Mi}}}
"""


@pytest.fixture
def operator() -> APIClient:
    team = make_team(name="payments")
    capacity = {"allocatable_cpu_millis": 8000, "allocatable_memory_bytes": 32 * GIB}
    make_cluster(
        team=team,
        name="eu-1",
        status="ready",
        region="eu-west-1",
        labels={"env": "prod"},
        **capacity,
    )
    make_cluster(
        team=team,
        name="eu-2",
        status="ready",
        region="eu-west-1",
        labels={"env": "prod"},
        requested_cpu_millis=7900,
        **capacity,
    )
    make_cluster(
        team=team,
        name="us-1",
        status="unreachable",
        region="us-east-1",
        labels={"env": "prod"},
        **capacity,
    )
    make_cluster(team=team, name="dev-1", status="ready", labels={"env": "dev"}, **capacity)
    make_cluster(
        team=make_team(), name="elsewhere", status="ready", labels={"env": "prod"}, **capacity
    )
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    client = APIClient()
    client.force_authenticate(user)
    return client


def _create(client: APIClient, **extra: Any) -> Any:
    body = {
        "name": "shop",
        "team": "payments",
        "namespace": "shop",
        "manifests": WEB,
        "placement": {"selector": "env=prod", "replicas": 2},
        **extra,
    }
    return client.post("/api/v1/applications/", body, format="json")


def test_bad_manifests_are_refused_per_document(operator: APIClient) -> None:
    response = _create(operator, manifests=WEB + "---\nkind: Service\nmetadata: {name: web}\n")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["manifests"] == ["Document 2: apiVersion is missing"]
    assert not Application.objects.exists()
    bad_placement = _create(operator, placement={"prioritizers": {"least_allocated": 11}})
    assert "weights from -10 to 10" in str(bad_placement.json()["error"]["fields"])


def test_simulate_explains_every_exclusion_and_stores_nothing(operator: APIClient) -> None:
    assert _create(operator).status_code == 201
    result = operator.post("/api/v1/applications/shop/simulate/", {}, format="json").json()
    assert [c["cluster"] for c in result["chosen"]] == ["eu-1"]
    assert result["chosen"][0]["replicas"] == 2
    assert {e["cluster"]: e["predicate"] for e in result["excluded"]} == {
        "dev-1": "LabelSelector",
        "eu-2": "CapacityFits",
        "us-1": "Healthy",
    }  # another team's cluster is not a candidate at all
    assert not PlacementDecision.objects.exists()
    what_if = operator.post(
        "/api/v1/applications/shop/simulate/",
        {"placement": {"selector": "", "replicas": 3, "division": "static"}},
        format="json",
    ).json()
    chosen = {c["cluster"]: c["replicas"] for c in what_if["chosen"]}
    assert set(chosen) == {"eu-1", "dev-1"} and sum(chosen.values()) == 3


def test_decisions_are_versioned(operator: APIClient) -> None:
    _create(operator)
    first = operator.post("/api/v1/applications/shop/decide/")
    second = operator.post("/api/v1/applications/shop/decide/")
    assert (first.status_code, first.json()["version"]) == (201, 1)
    assert second.json()["version"] == 2
    history = operator.get("/api/v1/applications/shop/decisions/").json()
    assert [d["version"] for d in history] == [2, 1]
    assert history[0]["chosen"][0]["scores"] == {"least_allocated": 0.0}


def test_simulate_summarizes_exclusions_unless_asked_for_all(operator: APIClient) -> None:
    team = Team.objects.get(name="payments")
    for index in range(25):  # 25 more excluded by their labels, 12 more not selected
        make_cluster(team=team, name=f"dev-{index + 2:02d}", status="ready", labels={"env": "dev"})
    for index in range(12):
        make_cluster(
            team=team,
            name=f"prod-{index:02d}",
            status="ready",
            labels={"env": "prod"},
            allocatable_cpu_millis=8000,
            allocatable_memory_bytes=32 * GIB,
        )
    created = _create(operator, placement={"selector": "env=prod", "number_of_clusters": 1})
    assert created.status_code == 201
    url = "/api/v1/applications/shop/simulate/"
    # by default: the first 10 per predicate / reason (by name / rank), and counts of all
    summary = operator.post(url, {}, format="json").json()
    assert summary["summary"] == {
        "excluded": {"CapacityFits": 1, "Healthy": 1, "LabelSelector": 26},
        "not_selected": {"enough clusters (1)": 12},
        "complete": False,
    }
    labels = [e["cluster"] for e in summary["excluded"] if e["predicate"] == "LabelSelector"]
    assert labels == sorted(["dev-1", *[f"dev-{i + 2:02d}" for i in range(25)]])[:10]
    assert len(summary["not_selected"]) == 10 and len(summary["chosen"]) == 1
    # every one on request, as `decide` stores them
    every = operator.post(f"{url}?exclusions=all", {}, format="json").json()
    assert len(every["excluded"]) == 28 and len(every["not_selected"]) == 12
    assert every["summary"]["complete"] is True
    stored = operator.post("/api/v1/applications/shop/decide/").json()
    assert stored["excluded"] == every["excluded"] and "summary" not in stored
    wrong = operator.post(f"{url}?exclusions=some", {}, format="json")
    assert wrong.status_code == 400 and "exclusions" in str(wrong.json())


def test_unknown_placement_keys_and_too_many_replicas_are_refused_on_save_and_simulate(
    operator: APIClient,
) -> None:
    # given: the typo `selectr` used to preview as "run on every cluster"
    typo = _create(operator, placement={"selectr": "env=prod"})
    # then: 400 naming the key and the closest known one; nothing saved
    assert typo.status_code == 400
    message = str(typo.json()["error"]["fields"]["placement"])
    assert "'selectr' (did you mean 'selector'?)" in message
    assert not Application.objects.exists()
    # OCM's spelling maps onto Keelson's key
    ocm = _create(operator, placement={"numberOfClusters": 2})
    assert "'numberOfClusters' (did you mean 'number_of_clusters'?)" in str(ocm.json())
    # given a saved application, a what-if with 10**7 replicas is refused before any work
    assert _create(operator).status_code == 201
    huge = operator.post(
        "/api/v1/applications/shop/simulate/",
        {"placement": {"replicas": 10**7, "division": "static"}},
        format="json",
    )
    assert huge.status_code == 400
    assert "from 0 to 1,000,000" in str(huge.json()["error"]["fields"]["replicas"])
    unknown = operator.post(
        "/api/v1/applications/shop/simulate/", {"placement": {"replica": 3}}, format="json"
    )
    assert unknown.status_code == 400 and "did you mean 'replicas'" in str(unknown.json())
