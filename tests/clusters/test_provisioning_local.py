"""The `local` provider end to end: real control planes started, scaled and deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clusters.models import Cluster, ClusterCredential, ClusterProvisioning
from clusters.providers.base import ClusterSpec
from clusters.providers.local import stop_all
from clusters.services.provisioning import (
    cluster_create,
    cluster_destroy,
    cluster_lifecycle_run,
    cluster_scale,
    cluster_upgrade,
)
from localkube import procs
from localkube.supervisor import supervisor_pid
from operations.models import Operation
from tests.factories import make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def local_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    settings.KEELSON_LOCAL_CLUSTERS_DIR = str(tmp_path / "local-clusters")
    yield tmp_path / "local-clusters"
    stop_all()


def spec(**pools: tuple[str, int]) -> ClusterSpec:
    return ClusterSpec.from_json(
        {
            "provider": "local",
            "region": "lab",
            "kubernetes_version": "1.20.2",
            "node_pools": [
                {"name": name, "instance_type": kind, "count": count}
                for name, (kind, count) in pools.items()
            ],
        }
    )


def test_provision_scale_and_delete_a_local_cluster(local_dir: Path) -> None:
    # given
    team = make_team()
    operation = cluster_create(
        actor=None,
        team=team,
        name="prov-1",
        spec=spec(workers=("m5.large", 2), gpu=("g4dn.xlarge", 1)),
        labels={"env": "dev"},
    )
    cluster = Cluster.objects.get(name="prov-1")
    assert cluster.status == "unknown"
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "provisioning"

    # when the task runs
    cluster_lifecycle_run(operation_id=operation.pk)

    # then a real cluster runs with the pools' capacity, registered and Ready
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    assert operation.progress == 100
    log = "\n".join(operation.log_lines.values_list("text", flat=True))
    assert "3 of 3 nodes Ready" in log
    cluster.refresh_from_db()
    assert cluster.status == "ready"
    assert cluster.provider == "local" and cluster.region == "lab"
    assert cluster.node_count == 3
    assert cluster.capacity_cpu_millis == (2 + 2 + 4) * 1000
    assert cluster.capacity_gpu == 1
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "active"
    directory = local_dir / "prov-1"
    pid = supervisor_pid(directory)
    assert pid is not None

    # when the same operation's task is delivered again, nothing is redone
    cluster_lifecycle_run(operation_id=operation.pk)
    assert supervisor_pid(directory) == pid
    assert ClusterCredential.objects.get(cluster=cluster).version == 1

    # when a pool is scaled
    scale = cluster_scale(actor=None, cluster=cluster, pool="workers", count=3)
    cluster_lifecycle_run(operation_id=scale.pk)
    scale.refresh_from_db()
    assert scale.state == "succeeded", scale.error
    cluster.refresh_from_db()
    assert cluster.node_count == 4
    provisioning = ClusterProvisioning.objects.get(cluster=cluster)
    assert ClusterSpec.from_json(provisioning.spec).pool("workers").count == 3

    # and an upgrade is refused with the reason, starting nothing
    with pytest.raises(ValidationError, match="cannot upgrade"):
        cluster_upgrade(actor=None, cluster=cluster, version="1.21.0")

    # when it is deleted
    delete = cluster_destroy(actor=None, cluster=cluster)
    cluster_lifecycle_run(operation_id=delete.pk)

    # then its processes are gone, its data removed, and the hub forgot it
    delete.refresh_from_db()
    assert delete.state == "succeeded", delete.error
    assert not procs.pid_alive(pid)
    assert not directory.exists()
    assert not Cluster.objects.filter(name="prov-1").exists()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"node_pools": []}, "at least one node pool"),
        (
            {"node_pools": [{"name": "a", "instance_type": "huge", "count": 1}]},
            "unknown instance type 'huge'",
        ),
        (
            {"node_pools": [{"name": "a", "instance_type": "m5.large", "count": -1}]},
            "count must be 0 to 1000",
        ),
        (
            {
                "node_pools": [{"name": "a", "instance_type": "m5.large", "count": 1}],
                "kubernetes_version": "1.29.0",
            },
            "runs v1.20.2",
        ),
    ],
)
def test_invalid_specs_are_refused_before_anything_is_created(
    local_dir: Path, data: dict[str, Any], fragment: str
) -> None:
    body = {"provider": "local", "region": "lab", "kubernetes_version": "1.20.2", **data}
    with pytest.raises(ValidationError) as raised:
        cluster_create(actor=None, team=make_team(), name="nope", spec=ClusterSpec.from_json(body))
    assert fragment in str(raised.value)
    assert not Cluster.objects.exists()
    assert not Operation.objects.exists()
