"""Cluster pages: list and filters, registration wizard, detail, edits, deregistration."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.test import Client

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from localkube.env import LocalCluster
from operations.models import Operation
from tests.clusters.helpers import register_local
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


def _login(role: Role | None, team: Any) -> Client:
    user = make_user()
    if role is not None:
        add_member(team, user, role)
    client = Client()
    client.force_login(user)
    return client


def test_empty_registry_says_what_to_do_next() -> None:
    client = _login(Role.VIEWER, make_team())
    page = client.get("/clusters/").content.decode()
    assert "Register your first cluster" in page


def test_list_filters_and_htmx_fragment() -> None:
    team = make_team()
    make_cluster(team=team, name="eu-prod", provider="aws", labels={"env": "prod"})
    make_cluster(team=team, name="us-dev", provider="gcp", labels={"env": "dev"})
    client = _login(Role.VIEWER, team)
    page = client.get("/clusters/", {"selector": "env=prod"}).content.decode()
    assert "eu-prod" in page and "us-dev" not in page
    fragment = client.get("/clusters/", {"provider": "gcp"}, headers={"HX-Request": "true"})
    text = fragment.content.decode()
    assert text.lstrip().startswith('<div id="cluster-table">')
    assert "us-dev" in text and "eu-prod" not in text
    bad = client.get("/clusters/", {"selector": "env in (prod"}).content.decode()
    assert "Invalid label selector at character" in bad


def test_list_paginates() -> None:
    team = make_team()
    for index in range(55):
        make_cluster(team=team, name=f"c-{index:03d}")
    client = _login(Role.VIEWER, team)
    first = client.get("/clusters/").content.decode()
    assert "c-049" in first and "c-050" not in first
    assert "Page 1 of 2" in first
    assert "c-050" in client.get("/clusters/", {"page": 2}).content.decode()


@pytest.mark.kube
def test_register_by_kubeconfig_through_the_wizard(kube_cluster: LocalCluster) -> None:
    team = make_team(name="platform")
    client = _login(Role.OPERATOR, team)
    kubeconfig = yaml.safe_dump(kube_cluster.control_plane.kubeconfig())
    contexts = client.post("/clusters/register/contexts/", {"kubeconfig": kubeconfig})
    assert 'value="member-1" selected' in contexts.content.decode()
    response = client.post(
        "/clusters/register/",
        {
            "name": "wizard-1",
            "team": "platform",
            "provider": "onprem",
            "method": "kubeconfig",
            "kubeconfig": kubeconfig,
            "kubeconfig_context": "member-1",
            "labels": "env=prod\ntier=web",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/clusters/wizard-1/"
    assert Cluster.objects.get(name="wizard-1").labels == {"env": "prod", "tier": "web"}


@pytest.mark.kube
def test_a_failed_registration_never_echoes_the_secret(kube_cluster: LocalCluster) -> None:
    team = make_team(name="platform")
    client = _login(Role.OPERATOR, team)
    plane = kube_cluster.control_plane
    response = client.post(
        "/clusters/register/",
        {
            "name": "wizard-2",
            "team": "platform",
            "provider": "onprem",
            "method": "token",
            "server": plane.server,
            "token": "wrong-token-xyz-123",
            "ca_data": plane.ca_file.read_text(),
        },
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "rejected the credentials (401 Unauthorized)" in page
    assert "wrong-token-xyz-123" not in page
    assert not Cluster.objects.exists()


def test_pull_registration_shows_the_token_once() -> None:
    team = make_team(name="edge")
    client = _login(Role.OPERATOR, team)
    response = client.post(
        "/clusters/register/",
        {"name": "store-42", "team": "edge", "provider": "edge", "method": "pull"},
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert "python -m agent --hub http://testserver --token kbt_" in page
    detail = client.get("/clusters/store-42/").content.decode()
    assert "kbt_" not in detail


@pytest.mark.kube
def test_detail_shows_inventory_after_collection(kube_cluster: LocalCluster) -> None:
    team = make_team()
    cluster = register_local(kube_cluster, team=team, name="detail-1")
    clusters_collect(cluster_ids=[cluster.pk])
    page = _login(Role.VIEWER, team).get("/clusters/detail-1/").content.decode()
    assert "member-1-node-0" in page
    assert "m5.xlarge" in page
    assert "kube-system" in page
    assert "Ready" in page
    assert kube_cluster.control_plane.token not in page


def test_labels_and_taints_edit_validates_and_is_operator_only() -> None:
    team = make_team()
    make_cluster(team=team, name="edit-me", labels={"env": "dev"})
    viewer = _login(Role.VIEWER, team)
    denied = viewer.post("/clusters/edit-me/edit/", {"labels": "env=prod", "provider": "aws"})
    assert denied.status_code == 403
    assert AuditEvent.objects.filter(action="request.denied", target_repr="edit-me").exists()
    operator = _login(Role.OPERATOR, team)
    bad = operator.post(
        "/clusters/edit-me/edit/", {"labels": "env=prod\nnot a label", "provider": "aws"}
    )
    assert bad.status_code == 400
    assert "Line 2: write key=value" in bad.content.decode()
    assert Cluster.objects.get(name="edit-me").labels == {"env": "dev"}
    ok = operator.post(
        "/clusters/edit-me/edit/",
        {"labels": "env=prod", "taints": "gpu=true:PreferNoSelect", "provider": "aws"},
    )
    assert ok.status_code == 302
    cluster = Cluster.objects.get(name="edit-me")
    assert cluster.labels == {"env": "prod"}
    assert cluster.taints == [{"key": "gpu", "value": "true", "effect": "PreferNoSelect"}]


def test_deregistration_asks_for_the_name_and_starts_an_operation() -> None:
    team = make_team()
    make_cluster(team=team, name="going")
    admin = _login(Role.ADMIN, team)
    wrong = admin.post("/clusters/going/deregister/", {"confirm": "gone"})
    assert wrong.status_code == 400
    assert "The name does not match." in wrong.content.decode()
    ok = admin.post("/clusters/going/deregister/", {"confirm": "going"})
    assert ok.status_code == 302
    operation = Operation.objects.get(kind="cluster.deregister")
    assert ok["Location"] == f"/operations/{operation.pk}/"


def test_outsiders_get_404() -> None:
    team = make_team()
    make_cluster(team=team, name="secret-cluster")
    assert _login(None, team).get("/clusters/secret-cluster/").status_code == 404


def test_list_sorts_by_a_column() -> None:
    team = make_team()
    make_cluster(team=team, name="a-small", node_count=1)
    make_cluster(team=team, name="b-big", node_count=9)
    client = _login(Role.VIEWER, team)
    page = client.get("/clusters/", {"sort": "-node_count"}).content.decode()
    assert page.index("b-big") < page.index("a-small")
    assert 'aria-sort="descending"' in page
    fallback = client.get("/clusters/", {"sort": "password"})
    assert fallback.status_code == 200  # unknown columns sort by name
