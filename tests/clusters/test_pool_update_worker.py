"""A node pool update driven by real workers: each check sends the next with a countdown,
and a worker killed with SIGKILL mid-update loses nothing (another one resumes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import ClusterSpec
from clusters.providers.local import stop_all
from clusters.services.credentials import cluster_api_client
from clusters.services.provisioning import cluster_create, cluster_pool_update
from kube.client import get_json
from operations.models import Operation
from tests.clusters.helpers import kill_and_replace_worker, local_clusters_for_workers, wait_for
from tests.clusters.test_provisioning_local import spec
from tests.conftest import start_worker, stop_worker
from tests.factories import make_team

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def _ended(operation: Operation) -> bool:
    return Operation.objects.get(pk=operation.pk).state in ("succeeded", "failed", "canceled")


def test_a_pool_update_survives_a_killed_worker(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a local cluster with a pool of 2, built by a worker
    local_clusters_for_workers(tmp_path / "local-clusters", settings, monkeypatch)
    first = start_worker("pools-a")
    second = None
    try:
        two = spec(workers=("m5.large", 2))
        built = cluster_create(actor=None, team=make_team(), name="pools-w", spec=two)
        wait_for(lambda: _ended(built), timeout=180, what="the cluster to be built")
        assert Operation.objects.get(pk=built.pk).state == "succeeded"
        cluster = Cluster.objects.get(name="pools-w")

        # when its pool update has replaced the first node, the worker is killed
        operation = cluster_pool_update(
            actor=None, cluster=cluster, pool="workers", image="ubuntu-2204-v2"
        )
        wait_for(
            lambda: "node 2 of 2" in Operation.objects.get(pk=operation.pk).message,
            timeout=120,
            what="the second node's turn",
        )

        # then another worker receives the pending check and finishes the update
        second = kill_and_replace_worker(first, operation, "pools-b")
        wait_for(lambda: _ended(operation), timeout=180, what="the update to end")
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        api = cluster_api_client(cluster=cluster)
        nodes = get_json(api, "/api/v1/nodes", {"labelSelector": "keelson.io/node-pool=workers"})
        assert sorted(n["status"]["nodeInfo"]["osImage"] for n in nodes["items"]) == [
            "ubuntu-2204-v2",
            "ubuntu-2204-v2",
        ]
        stored = ClusterSpec.from_json(ClusterProvisioning.objects.get(cluster=cluster).spec)
        assert stored.pool("workers").image == "ubuntu-2204-v2"
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                stop_worker(worker)
        stop_all()
