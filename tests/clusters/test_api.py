"""The clusters API: scoping per team, filters, label and taint edits, sets, deregistration."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import Cluster, ClusterSet
from clusters.services.lifecycle import cluster_deregister_run
from kube.apply import apply_manifest
from localkube.env import LocalCluster
from operations.models import Operation
from tests.clusters.helpers import register_local
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def fleet() -> dict[str, Any]:
    team, other = make_team(name="payments"), make_team(name="search")
    make_cluster(
        team=team,
        name="pay-eu",
        provider="aws",
        region="eu-west-1",
        labels={"env": "prod", "tier": "web"},
        status="ready",
    )
    make_cluster(
        team=team,
        name="pay-us",
        provider="gcp",
        region="us-east1",
        labels={"env": "staging"},
        status="degraded",
    )
    make_cluster(
        team=team,
        name="pay-edge",
        provider="edge",
        labels={"env": "prod"},
        status="unreachable",
        description="store 42",
    )
    make_cluster(team=other, name="search-1", provider="aws", labels={"env": "prod"})
    users = {role: make_user(username=role) for role in ("viewer", "operator", "admin")}
    for role, user in users.items():
        add_member(team, user, Role(role))
    users["outsider"] = make_user(username="outsider")
    return {"team": team, "other": other, **users}


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [c["name"] for c in response.json()["results"]]


def test_members_see_their_teams_clusters_only(fleet: dict[str, Any]) -> None:
    assert _names(_client(fleet["viewer"]).get("/api/v1/clusters/")) == [
        "pay-edge",
        "pay-eu",
        "pay-us",
    ]
    assert _names(_client(fleet["outsider"]).get("/api/v1/clusters/")) == []
    assert _client(fleet["outsider"]).get("/api/v1/clusters/pay-eu/").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"provider": "aws"}, ["pay-eu"]),
        ({"status": ["degraded", "unreachable"]}, ["pay-edge", "pay-us"]),
        ({"region": "us-east1"}, ["pay-us"]),
        ({"selector": "env=prod,tier notin (db)"}, ["pay-edge", "pay-eu"]),
        ({"selector": "!tier"}, ["pay-edge", "pay-us"]),
        ({"q": "store"}, ["pay-edge"]),
    ],
)
def test_list_filters(fleet: dict[str, Any], query: dict[str, Any], expected: list[str]) -> None:
    assert _names(_client(fleet["viewer"]).get("/api/v1/clusters/", query)) == expected


def test_an_invalid_selector_is_a_clear_400(fleet: dict[str, Any]) -> None:
    response = _client(fleet["viewer"]).get("/api/v1/clusters/", {"selector": "env in (prod"})
    assert response.status_code == 400
    assert "Invalid label selector at character" in response.json()["error"]["message"]


def test_list_query_count_does_not_grow_with_clusters(
    fleet: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    for index in range(30):
        make_cluster(team=fleet["team"], name=f"bulk-{index}")
    with django_assert_max_num_queries(6):
        _client(fleet["viewer"]).get("/api/v1/clusters/")


def test_operators_edit_labels_and_taints_with_validation_and_audit(fleet: dict[str, Any]) -> None:
    url = "/api/v1/clusters/pay-eu/"
    viewer = _client(fleet["viewer"]).patch(url, {"labels": {"env": "dev"}}, format="json")
    assert viewer.status_code == 403
    operator = _client(fleet["operator"])
    bad = operator.patch(url, {"labels": {"env": "not valid!"}}, format="json")
    assert bad.status_code == 400
    assert "value 'not valid!'" in bad.json()["error"]["message"]
    assert Cluster.objects.get(name="pay-eu").labels == {"env": "prod", "tier": "web"}
    taints = [{"key": "dedicated", "value": "payments", "effect": "NoSelect"}]
    ok = operator.patch(url, {"labels": {"env": "dev"}, "taints": taints}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["labels"] == {"env": "dev"}
    assert ok.json()["taints"] == taints
    event = AuditEvent.objects.get(action="cluster.update")
    assert event.detail["labels"] == {"from": {"env": "prod", "tier": "web"}, "to": {"env": "dev"}}


def test_only_admins_deregister(fleet: dict[str, Any]) -> None:
    assert _client(fleet["operator"]).delete("/api/v1/clusters/pay-us/").status_code == 403
    response = _client(fleet["admin"]).delete("/api/v1/clusters/pay-us/")
    assert response.status_code == 202
    operation = Operation.objects.get(pk=response.json()["id"])
    assert operation.kind == "cluster.deregister"
    assert operation.params == {
        "cluster_id": Cluster.objects.get(name="pay-us").pk,
        "cleanup": False,
    }


def test_cluster_sets_union_members_and_selector_within_the_team(fleet: dict[str, Any]) -> None:
    operator = _client(fleet["operator"])
    response = operator.post(
        "/api/v1/cluster-sets/",
        {"name": "prod", "team_name": "payments", "selector": "env=prod", "members": ["pay-us"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    members = operator.get("/api/v1/cluster-sets/prod/clusters/")
    # search-1 matches the selector but belongs to another team
    assert _names(members) == ["pay-edge", "pay-eu", "pay-us"]
    foreign = operator.post(
        "/api/v1/cluster-sets/",
        {"name": "x", "team_name": "payments", "members": ["search-1"]},
        format="json",
    )
    assert foreign.status_code == 400  # not visible to this user: no such cluster
    bad = operator.post(
        "/api/v1/cluster-sets/",
        {"name": "y", "team_name": "payments", "selector": "env in ("},
        format="json",
    )
    assert bad.status_code == 400
    assert "Invalid label selector" in bad.json()["error"]["message"]
    assert not ClusterSet.objects.filter(name="y").exists()


@pytest.mark.kube
def test_deregistration_with_cleanup_removes_only_keelsons_objects(
    kube_cluster: LocalCluster,
) -> None:
    # given a registered cluster holding one object of Keelson's and one of someone else
    team = make_team()
    admin = make_user()
    add_member(team, admin, Role.ADMIN)
    cluster = register_local(kube_cluster, team=team, name="to-remove")
    api = kube_cluster.control_plane.api_client()
    core = k8s.CoreV1Api(api)
    apply_manifest(
        api,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "keelson-owned", "namespace": "default"},
            "data": {"a": "1"},
        },
        owner_labels={"keelson.io/application": "demo"},
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "not-ours"}, "data": {"b": "2"}}
    )
    try:
        # when it is deregistered with cleanup
        response = _client(admin).delete(f"/api/v1/clusters/{cluster.name}/?cleanup=true")
        assert response.status_code == 202
        cluster_deregister_run(operation_id=response.json()["id"])
        # then Keelson's object is gone, the other stays, the hub forgot the cluster
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_config_map("keelson-owned", "default")
        assert gone.value.status == 404
        assert core.read_namespaced_config_map("not-ours", "default").data == {"b": "2"}
        assert not Cluster.objects.filter(name="to-remove").exists()
        operation = Operation.objects.get(pk=response.json()["id"])
        assert operation.state == "succeeded"
        assert "ConfigMap/default/keelson-owned" in operation.result["deleted"]
        assert AuditEvent.objects.filter(action="cluster.deregister").exists()
    finally:
        core.delete_namespaced_config_map("not-ours", "default")
