"""Provisioning through the API and pages: validation, permissions, templates, busy clusters."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from clusters.models import Cluster, ClusterProvisioning
from operations.models import Operation
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

EKS = {
    "provider": "capi",
    "region": "eu-west-1",
    "kubernetes_version": "1.29.4",
    "node_pools": [{"name": "general", "instance_type": "m5.large", "count": 3}],
    "params": {"management_cluster": "mgmt", "infrastructure": "aws"},
}


@pytest.fixture
def team() -> Any:
    team = make_team(name="platform")
    make_cluster(team=team, name="mgmt")
    return team


def _api(team: Any, role: Role) -> APIClient:
    user = make_user()
    add_member(team, user, role)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_providers_are_listed_with_capabilities(team: Any) -> None:
    body = _api(team, Role.VIEWER).get("/api/v1/providers/").json()
    assert [p["name"] for p in body["providers"]] == ["capi", "local"]
    assert {"provision", "scale", "upgrade", "delete"} <= set(body["providers"][0])
    assert {"name": "m5.large", "cpu": 2, "memory_gib": 8, "gpu": 0} in body["instance_types"]


def test_provision_returns_202_with_the_operation(team: Any) -> None:
    response = _api(team, Role.OPERATOR).post(
        "/api/v1/clusters/provision/",
        {"name": "eks-1", "team": "platform", "spec": EKS, "labels": {"env": "prod"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["id"])
    assert operation.kind == "cluster.provision"
    cluster = Cluster.objects.get(name="eks-1")
    assert (cluster.provider, cluster.region, cluster.labels) == (
        "aws",
        "eu-west-1",
        {"env": "prod"},
    )
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "provisioning"
    # a second lifecycle action waits for the first
    busy = _api(team, Role.OPERATOR).post(
        "/api/v1/clusters/eks-1/scale/", {"pool": "general", "count": 4}, format="json"
    )
    assert busy.status_code == 400
    assert "eks-1 is busy: cluster.provision (pending)" in busy.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"provider": "openstack"}, "Unknown provider 'openstack'"),
        ({"params": {"infrastructure": "aws"}}, "params.management_cluster"),
        (
            {"params": {"management_cluster": "ghost", "infrastructure": "aws"}},
            "no registered cluster named 'ghost'",
        ),
        (
            {"params": {"management_cluster": "mgmt", "infrastructure": "gcp"}},
            "gcp needs: params.project",
        ),
        ({"kubernetes_version": "latest"}, "not a Kubernetes version"),
        ({"region": ""}, "aws clusters need a region"),
    ],
)
def test_invalid_specs_are_400s_that_create_nothing(
    team: Any, change: dict[str, Any], fragment: str
) -> None:
    response = _api(team, Role.OPERATOR).post(
        "/api/v1/clusters/provision/",
        {"name": "bad-1", "team": "platform", "spec": {**EKS, **change}},
        format="json",
    )
    assert response.status_code == 400
    assert fragment in str(response.json()["error"])
    assert not Cluster.objects.filter(name="bad-1").exists()
    assert not Operation.objects.exists()


def test_viewers_cannot_provision(team: Any) -> None:
    response = _api(team, Role.VIEWER).post(
        "/api/v1/clusters/provision/", {"name": "x", "team": "platform", "spec": EKS}, format="json"
    )
    assert response.status_code == 403


def test_templates_create_clusters(team: Any) -> None:
    operator = _api(team, Role.OPERATOR)
    created = operator.post(
        "/api/v1/cluster-templates/",
        {"name": "eks-standard", "team": "platform", "spec": EKS, "description": "EKS, 3 nodes"},
        format="json",
    )
    assert created.status_code == 201, created.content
    response = operator.post(
        "/api/v1/cluster-templates/eks-standard/create-cluster/",
        {"name": "eks-2", "team": "platform"},
        format="json",
    )
    assert response.status_code == 202, response.content
    provisioning = ClusterProvisioning.objects.get(cluster__name="eks-2")
    assert provisioning.template is not None and provisioning.template.name == "eks-standard"
    assert provisioning.spec["node_pools"][0]["count"] == 3


def test_lifecycle_of_a_registered_cluster_is_refused(team: Any) -> None:
    response = _api(team, Role.ADMIN).post(
        "/api/v1/clusters/mgmt/upgrade/", {"kubernetes_version": "1.30.0"}, format="json"
    )
    assert response.status_code == 400
    assert "registered, not created by Keelson" in response.json()["error"]["message"]


def test_create_page_validates_and_starts_an_operation(team: Any) -> None:
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    client = Client()
    client.force_login(user)
    form = {
        "name": "gke-1",
        "team": "platform",
        "provider": "capi",
        "region": "europe-west1",
        "kubernetes_version": "1.29.4",
        "node_pools": "system e2-standard-4 2",
        "management_cluster": "mgmt",
        "infrastructure": "gcp",
        "namespace": "default",
    }
    bad = client.post("/clusters/create/", form)
    assert bad.status_code == 400
    assert "gcp needs: params.project" in bad.content.decode()
    bad_pools = client.post("/clusters/create/", {**form, "node_pools": "system e2-standard-4"})
    assert "Line 1: write name, instance type and count" in bad_pools.content.decode()
    ok = client.post("/clusters/create/", {**form, "project": "acme"})
    assert ok.status_code == 302
    operation = Operation.objects.get(kind="cluster.provision")
    assert ok["Location"] == f"/operations/{operation.pk}/"
    page = client.get("/clusters/gke-1/").content.decode()
    assert "capi provider · Provisioning" in page
