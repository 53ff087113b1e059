"""Rolling upgrade: the previous release's worker (the first line of RELEASES, taken from
git) runs against this tree's schema (the test database, migrated by this tree) the tasks
beat sends most: the collection fan-out and its shards, the policy sweep and its batches,
and the cost computation. Their results are those this tree's code computes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from clusters.models import ClusterInventory
from core.celery import QUEUES, task_send
from core.celery import app as celery_app
from costs.models import CostAllocation
from costs.services import cost_compute
from localkube.env import LocalCluster
from operations.models import PipelineRun
from policies.models import Policy, PolicyEvaluation
from policies.services.library import library_load
from tests.clusters.helpers import deploy_and_wait, register_local, wait_for
from tests.factories import make_team
from tests.hub.releases import REPO, previous_release, release_commit
from tests.support import child_database_url

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

CELERY = [sys.executable, "-m", "celery", "-A", "fleet", "worker", "-l", "info"]


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's source tree (`git archive` of its commit)."""
    name, _ = previous_release()
    commit = release_commit()
    tree = tmp_path_factory.mktemp(f"release-{name}")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    )
    tar = tree / "release.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as opened:
        opened.extractall(tree, filter="data")
    tar.unlink()
    return tree


def old_env() -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    env.pop("PYTHONPATH", None)  # the old tree only (the current directory comes first)
    return env


@pytest.fixture
def old_worker(old_tree: Path, tmp_path: Path) -> Iterator[Path]:
    """A Celery worker of the previous release, with this tree's virtualenv."""
    where = subprocess.run(
        [sys.executable, "-c", "import fleet, costs, policies; print(fleet.__file__)"],
        cwd=old_tree,
        env=old_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(old_tree), where.stdout
    celery_app.control.purge()
    node = f"release-{os.getpid()}"
    log = tmp_path / "old-worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*CELERY, "-Q", ",".join(QUEUES), "-P", "solo", "-n", f"{node}@%h"],
            cwd=old_tree,
            env=old_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        destination = [f"{node}@{socket.gethostname()}"]
        while not celery_app.control.ping(destination=destination, timeout=1):
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the old worker did not answer within 60 s"
        yield log
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_the_previous_releases_worker_runs_the_common_tasks_on_the_new_schema(
    kube_cluster: LocalCluster, old_worker: Path
) -> None:
    # given a cluster running a deployment that requests 2 x 500m CPU and 2 x 256Mi
    api = kube_cluster.control_plane.api_client()
    namespace = deploy_and_wait(
        api, prefix="release", name="priced", replicas=2, cpu="500m", memory="256Mi"
    )
    team = make_team()
    cluster = register_local(kube_cluster, team=team, name="release-1")
    started = timezone.now()

    def failed() -> str:
        return old_worker.read_text()[-4000:]

    try:
        # when beat's collection fan-out runs on the old worker
        task_send("clusters.tasks.clusters_collect_fanout_task")
        inventory = wait_for(
            lambda: ClusterInventory.objects.filter(cluster=cluster).first(),
            timeout=90,
            what=f"the old worker's collection\n{failed()}",
        )
        # then the inventory holds the deployment's requests, and the pipeline ran
        mine = [r for r in inventory.data["allocations"] if r["namespace"] == namespace]
        assert sum(r["cpu_millis"] for r in mine) == 1000
        assert sum(r["memory_bytes"] for r in mine) == 2 * 256 * 2**20
        wait_for(
            lambda: PipelineRun.objects.filter(name="collection", last_run_at__gte=started),
            timeout=30,
            what="the collection pipeline's run",
        )

        # when its policy sweep runs
        library_load(team=team)
        policies = Policy.objects.filter(team=team, enabled=True).count()
        task_send("policies.tasks.policies_evaluate_fanout_task")
        # then each enabled policy is judged once on the cluster
        wait_for(
            lambda: PolicyEvaluation.objects.filter(cluster=cluster).count() == policies,
            timeout=120,
            what=f"the old worker's sweep\n{failed()}",
        )
        assert PipelineRun.objects.filter(name="policies", last_run_at__gte=started).exists()

        # when its cost computation runs
        task_send("costs.tasks.cost_compute_task")
        charged = wait_for(
            lambda: CostAllocation.objects.filter(cluster=cluster, namespace=namespace).first(),
            timeout=90,
            what=f"the old worker's cost computation\n{failed()}",
        )
        wait_for(
            lambda: PipelineRun.objects.filter(name="costs", last_run_at__gte=started),
            timeout=30,
            what="the cost pipeline's run",
        )
        # then the namespace is charged what this tree's code charges for the same hour
        assert Decimal(0) < charged.cpu_core_hours <= Decimal(1)
        old = CostAllocation.objects.filter(cluster=cluster, hour=charged.hour)
        by_old = {row.namespace: (row.cpu_core_hours, row.total_cost) for row in old}
        cost_compute(cluster_ids=[cluster.pk], hour=charged.hour)
        new = CostAllocation.objects.filter(cluster=cluster, hour=charged.hour)
        assert {row.namespace: (row.cpu_core_hours, row.total_cost) for row in new} == by_old
        assert "ERROR" not in old_worker.read_text()
    finally:
        k8s.CoreV1Api(api).delete_namespace(namespace)
