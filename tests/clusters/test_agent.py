"""Pull mode: a real agent process enrolls with a real hub, heartbeats, and is revoked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clusters.models import Cluster, ClusterInventory, HealthSample
from clusters.services.collection import agents_mark_silent
from clusters.services.registration import ClusterFields, agent_tokens_revoke, cluster_register_pull
from localkube.env import LocalCluster
from tests.factories import make_team

pytestmark = [pytest.mark.kube]
REPO = Path(__file__).resolve().parents[2]


def _agent(
    hub: str, kubeconfig: Path, state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "--hub",
            hub,
            "--kubeconfig",
            str(kubeconfig),
            "--state-dir",
            str(state),
            "--once",
            *extra,
        ],
        cwd=REPO,
        # the agent's own settings (agent/settings.py), as its image runs it
        env={**os.environ, "KUBECONFIG": "", "DJANGO_SETTINGS_MODULE": "agent.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_agent_enrolls_heartbeats_and_is_refused_once_revoked(
    asgi_server: str, kube_cluster: LocalCluster, tmp_path: Path
) -> None:
    # given a pull-mode cluster and its one-time bootstrap token
    cluster, token = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-1", team=make_team(), provider="edge")
    )
    assert cluster.status == "unknown"
    kubeconfig = kube_cluster.control_plane.write_kubeconfig()
    state = tmp_path / "agent"

    # when the agent runs with it
    first = _agent(asgi_server, kubeconfig, state, "--token", token)

    # then it enrolls, reports its inventory and the cluster is Ready
    assert first.returncode == 0, first.stderr
    assert "enrolled as cluster edge-1" in first.stderr
    cluster.refresh_from_db()
    assert cluster.status == "ready"
    assert cluster.node_count == 2
    assert cluster.kubernetes_version == "v1.20.2"
    assert ClusterInventory.objects.filter(cluster=cluster).exists()
    credential = state / "agent.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert token not in first.stderr
    assert "kat_" not in first.stderr  # its own token is never logged

    # and a restarted agent needs no bootstrap token: it heartbeats with its credential
    second = _agent(asgi_server, kubeconfig, state)
    assert second.returncode == 0, second.stderr
    assert HealthSample.objects.filter(cluster=cluster).count() == 2

    # and the bootstrap token cannot be used twice
    reuse = APIClient().post("/api/v1/agent/enroll", {"bootstrap_token": token}, format="json")
    assert reuse.status_code == 401
    assert "already been used" in reuse.json()["error"]["message"]

    # when the agent is revoked
    agent_tokens_revoke(cluster=cluster, actor=None)
    third = _agent(asgi_server, kubeconfig, state)

    # then the hub refuses it and the agent stops (exit 3) saying why
    assert third.returncode == 3
    assert "revoked" in third.stderr


@pytest.mark.django_db
def test_a_silent_agent_makes_its_cluster_unreachable() -> None:
    cluster, _ = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-2", team=make_team())
    )
    Cluster.objects.filter(pk=cluster.pk).update(
        status="ready", last_seen_at=timezone.now() - timedelta(seconds=60)
    )
    # 60 s of silence at a 30 s interval: still within three heartbeats
    assert agents_mark_silent() == 0
    # 100 s: three heartbeats missed
    assert agents_mark_silent(now=timezone.now() + timedelta(seconds=40)) == 1
    cluster.refresh_from_db()
    assert cluster.status == "unreachable"
    assert cluster.status_reason == "AgentSilent"
    assert cluster.transitions.get().to_status == "unreachable"


@pytest.mark.django_db
def test_heartbeats_with_a_malformed_inventory_are_refused(tmp_path: Path) -> None:
    from clusters.models import AgentToken
    from clusters.services.registration import agent_exchange

    _, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-3", team=make_team())
    )
    _, agent_token = agent_exchange(bootstrap_token=bootstrap)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_token}")
    response = client.post(
        "/api/v1/agent/heartbeat", {"inventory": {"nodes": "many"}}, format="json"
    )
    assert response.status_code == 400
    assert "inventory.nodes must be a list of objects" in response.json()["error"]["message"]
    assert not HealthSample.objects.exists()
    # a token is stored hashed, never in clear
    assert not AgentToken.objects.filter(token_hash=agent_token).exists()
    anonymous = APIClient().post("/api/v1/agent/heartbeat", {}, format="json")
    assert anonymous.status_code == 401


@pytest.mark.django_db
def test_an_agent_rotates_its_token_and_the_old_one_stops_working_once_the_new_is_used() -> None:
    from clusters.services.registration import agent_exchange

    _, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-4", team=make_team())
    )
    _, old = agent_exchange(bootstrap_token=bootstrap)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {old}")
    rotated = client.post("/api/v1/agent/rotate")
    assert rotated.status_code == 201
    new = rotated.json()["agent_token"]
    assert new.startswith("kat_") and new != old
    # the old token works until the new one is first used (the answer may have been lost)
    assert client.get("/api/v1/agent/work").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {new}")
    work = client.get("/api/v1/agent/work")
    assert work.status_code == 200
    assert work.json()["cluster"] == "edge-4"
    assert work.json()["objects"] == []  # no application is placed on it
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {old}")
    assert client.get("/api/v1/agent/work").status_code == 401
