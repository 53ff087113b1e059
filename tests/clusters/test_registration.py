"""Registering clusters in push mode against a real kube-apiserver, and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import Cluster, ClusterCredential
from localkube.env import LocalCluster
from tests.factories import add_member, make_team, make_user
from tests.support import free_port, self_signed_pem

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def operator() -> tuple[APIClient, Any]:
    team = make_team(name="platform")
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    client = APIClient()
    client.force_authenticate(user)
    return client, team


def _register(client: APIClient, **payload: Any) -> Any:
    body = {"team": "platform", "provider": "onprem", "region": "local", **payload}
    return client.post("/api/v1/clusters/", body, format="json")


def _assert_nothing_stored_and_no_secret(response: Any, *secrets: str) -> None:
    assert Cluster.objects.count() == 0
    assert ClusterCredential.objects.count() == 0
    text = response.content.decode()
    audit = json.dumps(list(AuditEvent.objects.values("detail", "target_repr")), default=str)
    for secret in secrets:
        assert secret not in text
        assert secret not in audit


def test_register_by_kubeconfig(
    operator: tuple[APIClient, Any], kube_cluster: LocalCluster
) -> None:
    # given
    client, team = operator
    plane = kube_cluster.control_plane
    kubeconfig = yaml.safe_dump(plane.kubeconfig())
    # when
    response = _register(
        client,
        name="east-1",
        kubeconfig=kubeconfig,
        kubeconfig_context="member-1",
        labels={"env": "prod"},
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cluster"]["name"] == "east-1"
    assert body["cluster"]["kubernetes_version"] == "v1.20.2"
    assert body["cluster"]["api_server_url"] == plane.server
    assert body["warnings"] == []  # the admin token may write
    assert plane.token not in response.content.decode()
    credential = ClusterCredential.objects.get(cluster__name="east-1")
    assert credential.kind == "kubeconfig"
    assert plane.token not in credential.ciphertext  # encrypted at rest
    event = AuditEvent.objects.get(action="cluster.register")
    assert event.team_id == team.pk
    # and the cluster detail never shows the credential
    detail = client.get("/api/v1/clusters/east-1/")
    assert plane.token not in detail.content.decode()
    assert "kubeconfig" not in detail.json()


def test_register_by_url_token_and_ca(
    operator: tuple[APIClient, Any], kube_cluster: LocalCluster
) -> None:
    client, _ = operator
    plane = kube_cluster.control_plane
    response = _register(
        client,
        name="east-2",
        server=plane.server,
        token=plane.token,
        ca_data=plane.ca_file.read_text(),
    )
    assert response.status_code == 201, response.content
    assert ClusterCredential.objects.get(cluster__name="east-2").kind == "token"


def test_contexts_of_a_kubeconfig_are_listed_without_storing(
    operator: tuple[APIClient, Any], kube_cluster: LocalCluster
) -> None:
    client, _ = operator
    kubeconfig = yaml.safe_dump(kube_cluster.control_plane.kubeconfig())
    response = client.post("/api/v1/clusters/contexts/", {"kubeconfig": kubeconfig}, format="json")
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "member-1",
            "cluster": "member-1",
            "server": kube_cluster.control_plane.server,
            "user": "member-1-admin",
            "namespace": "",
            "current": True,
        }
    ]
    assert Cluster.objects.count() == 0


def test_unreachable_server_is_refused(operator: tuple[APIClient, Any]) -> None:
    client, _ = operator
    response = _register(
        client,
        name="nowhere",
        server=f"https://127.0.0.1:{free_port()}",
        token="t0ken-abc",
        ca_data=self_signed_pem(),
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unreachable"
    assert "Cannot connect to https://127.0.0.1:" in error["message"]
    _assert_nothing_stored_and_no_secret(response, "t0ken-abc")


def test_wrong_ca_is_a_tls_failure(
    operator: tuple[APIClient, Any], kube_cluster: LocalCluster
) -> None:
    client, _ = operator
    plane = kube_cluster.control_plane
    response = _register(
        client, name="bad-ca", server=plane.server, token=plane.token, ca_data=self_signed_pem()
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "tls"
    assert "TLS verification" in error["message"]
    _assert_nothing_stored_and_no_secret(response, plane.token)


def test_wrong_token_is_an_authentication_failure(
    operator: tuple[APIClient, Any], kube_cluster: LocalCluster
) -> None:
    client, _ = operator
    plane = kube_cluster.control_plane
    response = _register(
        client,
        name="bad-token",
        server=plane.server,
        token="not-a-valid-token-123",
        ca_data=plane.ca_file.read_text(),
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "rejected the credentials" in error["message"]
    _assert_nothing_stored_and_no_secret(response, "not-a-valid-token-123")


def test_missing_permissions_are_named(
    operator: tuple[APIClient, Any], kube_cluster: LocalCluster
) -> None:
    client, _ = operator
    plane = kube_cluster.control_plane
    response = _register(
        client,
        name="no-rbac",
        server=plane.server,
        token=plane.unprivileged_token,
        ca_data=plane.ca_file.read_text(),
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert "lack permissions Keelson needs: list nodes, list namespaces" in error["message"]
    _assert_nothing_stored_and_no_secret(response, plane.unprivileged_token)


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"kubeconfig": "clusters: ["}, "kubeconfig", "not valid YAML"),
        ({"server": "http://x:6443", "token": "abc"}, "server", "must start with https://"),
        ({"server": "https://x:6443", "token": "abc"}, "ca_data", "CA bundle"),
        ({"server": "https://x:6443", "token": "abc", "ca_data": "nope"}, "ca_data", "not a PEM"),
        ({"labels": {"bad key": "x"}, "kubeconfig": "x"}, "labels", "label key 'bad key'"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    operator: tuple[APIClient, Any], payload: dict[str, Any], field: str, fragment: str
) -> None:
    client, _ = operator
    response = _register(client, name="bad-input", **payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["fields"]
    assert fragment in json.dumps(error["fields"][field])
    _assert_nothing_stored_and_no_secret(response)


def test_a_viewer_cannot_register_and_the_refusal_is_audited(
    kube_cluster: LocalCluster,
) -> None:
    team = make_team(name="platform")
    user = make_user()
    add_member(team, user, Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)
    plane = kube_cluster.control_plane
    response = _register(
        client, name="x", server=plane.server, token=plane.token, ca_data=plane.ca_file.read_text()
    )
    assert response.status_code == 403
    assert "operator role" in response.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="request.denied").exists()
    _assert_nothing_stored_and_no_secret(response, plane.token)


def test_an_outsider_cannot_register_into_a_foreign_team() -> None:
    make_team(name="platform")
    client = APIClient()
    client.force_authenticate(make_user())
    response = _register(client, name="x", server="https://a:1", token="t", ca_data="x")
    assert response.status_code == 403  # as for a team that does not exist: no probing
    assert "no role in a team named 'platform'" in response.json()["error"]["message"]
    assert not Cluster.objects.filter(name="x").exists()
