"""Pull clusters whose agent runs for real: the `python -m agent` process against a real
hub (uvicorn on the test database) and a real kube-apiserver, or the same Agent class in
this process where a test needs to cut the hub off."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from accounts.models import Team
from agent.runner import Agent
from clusters.choices import Provider
from clusters.models import Cluster
from clusters.services.registration import ClusterFields, cluster_register_pull
from localkube.env import LocalCluster
from tests.clusters.test_agent import _agent


def enrolled(
    hub: str, local: LocalCluster, state: Path, *, team: Team, name: str = "", provider: str = ""
) -> tuple[Cluster, str]:
    """A pull cluster whose agent process has enrolled and run its first cycle, and the
    agent's log."""
    cluster, token = cluster_register_pull(
        actor=None,
        fields=ClusterFields(
            name=name or f"edge-{uuid.uuid4().hex[:6]}",
            team=team,
            provider=provider or Provider.OTHER,
        ),
    )
    run = _agent(hub, local.control_plane.write_kubeconfig(), state, "--token", token)
    assert run.returncode == 0, run.stderr
    cluster.refresh_from_db()
    return cluster, run.stderr


def agent_run(hub: str, local: LocalCluster, state: Path) -> str:
    """One cycle of the agent process; returns its log."""
    run = _agent(hub, local.control_plane.write_kubeconfig(), state)
    assert run.returncode == 0, run.stderr
    return run.stderr


def in_process(hub: str, local: LocalCluster, state: Path) -> Agent:
    """The agent in this process, on the same state directory as the process runs."""
    return Agent(hub=hub, state_dir=state, api=local.control_plane.api_client())


def dead_hub() -> str:
    """A URL where nothing listens (a hub that is down or cut off)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def namespace(kube_cluster: LocalCluster) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    name = f"pull-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, _preload_content=False)


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}], **spec},
    }
