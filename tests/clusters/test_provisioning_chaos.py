"""A worker killed with SIGKILL mid-provisioning: the task is redelivered to another
worker, which resumes the same Operation and builds the cluster once."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from clusters.models import Cluster, ClusterCredential
from clusters.providers.base import ClusterSpec
from clusters.providers.local import stop_all
from clusters.services.provisioning import cluster_create
from core.celery import app as celery_app
from localkube.supervisor import supervisor_pid
from operations.models import Operation
from tests.clusters.helpers import wait_for
from tests.conftest import start_worker, stop_worker
from tests.factories import make_team

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def _serving(directory: Path) -> int:
    """How many supervisor processes serve this cluster directory."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        if b"localkube" in args and b"serve" in args and str(directory).encode() in args:
            count += 1
    return count


def test_killed_worker_mid_provisioning_builds_the_cluster_once(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given workers that put local clusters under a test directory
    root = tmp_path / "local-clusters"
    monkeypatch.setenv("KEELSON_LOCAL_CLUSTERS_DIR", str(root))
    settings.KEELSON_LOCAL_CLUSTERS_DIR = str(root)
    celery_app.control.purge()
    first = start_worker("chaos-a")
    second = None
    try:
        spec = ClusterSpec.from_json(
            {
                "provider": "local",
                "region": "lab",
                "kubernetes_version": "1.20.2",
                "node_pools": [{"name": "workers", "instance_type": "m5.large", "count": 2}],
            }
        )
        operation = cluster_create(actor=None, team=make_team(), name="chaos-1", spec=spec)

        # when the worker is killed while the control plane starts
        wait_for(
            lambda: Operation.objects.get(pk=operation.pk).progress >= 10,
            timeout=60,
            what="provisioning to start",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert Operation.objects.get(pk=operation.pk).state == "running"

        # then another worker receives the task again and finishes the same operation
        second = start_worker("chaos-b")
        wait_for(
            lambda: Operation.objects.get(pk=operation.pk).state in ("succeeded", "failed"),
            timeout=180,
            what="the operation to end",
        )
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        # and nothing was done twice: one control plane, one credential, one cluster
        directory = root / "chaos-1"
        assert supervisor_pid(directory) is not None
        assert _serving(directory) == 1
        cluster = Cluster.objects.get(name="chaos-1")
        assert ClusterCredential.objects.get(cluster=cluster).version == 1
        assert cluster.status == "ready" and cluster.node_count == 2
        assert Operation.objects.filter(kind="cluster.provision").count() == 1
    finally:
        if first.poll() is None:
            first.kill()
        if second is not None:
            stop_worker(second)
        stop_all()
