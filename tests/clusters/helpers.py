"""Registering a local test cluster in the hub without going through the API."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from accounts.models import Team
from clusters.choices import CredentialKind, Provider
from clusters.models import Cluster
from clusters.services.credentials import credential_store
from kube.kubeconfig import connection_from_kubeconfig
from localkube.env import LocalCluster
from operations.models import Operation


def register_local(local: LocalCluster, *, team: Team, name: str | None = None) -> Cluster:
    spec = connection_from_kubeconfig(yaml.safe_dump(local.control_plane.kubeconfig()))
    cluster = Cluster.objects.create(
        name=name or local.name,
        team=team,
        provider=Provider.LOCAL,
        api_server_url=spec.server,
    )
    credential_store(cluster=cluster, spec=spec, kind=CredentialKind.KUBECONFIG)
    return cluster


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def deploy_and_wait(
    api: k8s.ApiClient, *, prefix: str, name: str, replicas: int, cpu: str, memory: str
) -> str:
    """A new namespace with a Deployment whose pods request `cpu` and `memory`, waited
    until every replica is ready. Returns the namespace."""
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    labels = {"app": name}
    container = {
        "name": name,
        "image": "nginx:1.25",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
    )
    wait_for(
        lambda: (
            (apps.read_namespaced_deployment(name, namespace).status.ready_replicas or 0)
            == replicas
        ),
        timeout=60,
        what=f"{replicas} ready replicas of {name}",
    )
    return namespace


def local_clusters_for_workers(root: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process and the workers it starts keep local clusters under `root`; no message
    of an earlier test is left on the broker."""
    from core.celery import app as celery_app

    monkeypatch.setenv("KEELSON_LOCAL_CLUSTERS_DIR", str(root))
    settings.KEELSON_LOCAL_CLUSTERS_DIR = str(root)
    celery_app.control.purge()


def kill_and_replace_worker(
    worker: subprocess.Popen[bytes], operation: Operation, name: str
) -> subprocess.Popen[bytes]:
    """SIGKILL `worker` in the middle of `operation` (it stays running), start another."""
    from tests.conftest import start_worker

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert Operation.objects.get(pk=operation.pk).state == "running"
    return start_worker(name)
