"""The `local` provider runs clusters on the hub's own host: each team has a quota of
clusters and nodes (issue 21, item 13), so one team's operator cannot exhaust the host."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from clusters.models import Cluster, ClusterProvisioning
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
API = "/api/v1/"


def local_spec(nodes: int) -> dict[str, Any]:
    return {
        "provider": "local",
        "region": "",
        "kubernetes_version": "v1.20.2",
        "node_pools": [{"name": "pool", "instance_type": "t3.medium", "count": nodes}],
    }


def seed_local(team: Any, name: str, nodes: int) -> Cluster:
    """A local cluster the team already has (built earlier)."""
    cluster = make_cluster(team=team, name=name, provider="local")
    ClusterProvisioning.objects.create(
        cluster=cluster, provider="local", spec=local_spec(nodes), lifecycle="ready"
    )
    return cluster


@pytest.fixture
def quota(settings: Any) -> None:
    settings.KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM = 2
    settings.KEELSON_LOCAL_MAX_NODES_PER_TEAM = 5


def operator_of(team: Any) -> APIClient:
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    client = APIClient()
    client.force_authenticate(user)
    return client


def provision(client: APIClient, team: str, name: str, nodes: int) -> Any:
    return client.post(
        API + "clusters/provision/",
        {"name": name, "team": team, "spec": local_spec(nodes)},
        format="json",
    )


def test_a_team_past_its_local_cluster_quota_is_refused(quota: None) -> None:
    team = make_team(name="greedy")
    seed_local(team, "local-1", 1)
    seed_local(team, "local-2", 1)
    response = provision(operator_of(team), "greedy", "local-3", 1)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Team greedy has 2 local clusters: the quota is 2 "
        "(KEELSON_LOCAL_MAX_CLUSTERS_PER_TEAM). Delete one first."
    )
    assert not Cluster.objects.filter(name="local-3").exists()
    # another team's quota is its own
    other = make_team(name="modest")
    assert provision(operator_of(other), "modest", "modest-1", 1).status_code == 202


def test_a_team_past_its_local_node_quota_is_refused(quota: None) -> None:
    team = make_team(name="greedy")
    seed_local(team, "local-1", 3)
    client = operator_of(team)
    # 3 in use + 3 asked = 6 > 5
    refused = provision(client, "greedy", "local-2", 3)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Team greedy's local clusters would have 6 nodes: the quota is 5 "
        "(KEELSON_LOCAL_MAX_NODES_PER_TEAM), 3 in use."
    )
    # 3 + 2 = 5 fits exactly
    assert provision(client, "greedy", "local-2", 2).status_code == 202


def test_scaling_past_the_node_quota_is_refused(quota: None) -> None:
    team = make_team(name="greedy")
    seed_local(team, "local-1", 2)
    grow = seed_local(team, "local-2", 1)
    client = operator_of(team)
    # the scaled cluster's own nodes are replaced, not added: 2 + 4 = 6 > 5
    refused = client.post(API + f"clusters/{grow.name}/scale/", {"pool": "pool", "count": 4})
    assert refused.status_code == 400
    assert "would have 6 nodes: the quota is 5" in refused.json()["error"]["message"]
    assert (
        client.post(API + f"clusters/{grow.name}/scale/", {"pool": "pool", "count": 3}).status_code
        == 202
    )
