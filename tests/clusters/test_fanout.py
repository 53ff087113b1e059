"""Beat's fan-out: one Celery message per shard of clusters, run by a real worker."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.choices import CredentialKind
from clusters.models import Cluster, HealthSample
from clusters.services.collection import clusters_collect_fanout
from clusters.services.credentials import credential_store
from clusters.tasks import clusters_collect_shard_task
from core.celery import app as celery_app
from kube.client import ConnectionSpec
from localkube.env import LocalCluster
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_cluster, make_team
from tests.support import free_port

pytestmark = [pytest.mark.kube]


def test_collection_is_routed_to_the_clusters_queue() -> None:
    route = celery_app.amqp.router.route({}, "clusters.tasks.clusters_collect_shard_task")
    assert route["queue"].name == "clusters"


@pytest.mark.usefixtures("celery_worker")
def test_fanout_sends_one_task_per_shard_and_every_cluster_is_probed(
    kube_cluster: LocalCluster, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given one real cluster and four whose API servers do not answer
    settings.KEELSON_COLLECT_SHARD_SIZE = 2
    team = make_team()
    live = register_local(kube_cluster, team=team, name="fan-live")

    for index in range(4):
        dead = make_cluster(team=team, name=f"fan-dead-{index}")
        spec = ConnectionSpec(server=f"https://127.0.0.1:{free_port()}", token="x")
        credential_store(cluster=dead, spec=spec, kind=CredentialKind.TOKEN)
    sent: list[list[int]] = []

    original = clusters_collect_shard_task.apply_async

    def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(list(kwargs["args"][0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(clusters_collect_shard_task, "apply_async", spy)
    # when beat's task runs
    shards = clusters_collect_fanout()
    # then five clusters went out in three messages, each cluster exactly once
    assert shards == 3
    assert sorted(len(shard) for shard in sent) == [1, 2, 2]
    assert sorted(i for shard in sent for i in shard) == sorted(
        Cluster.objects.values_list("pk", flat=True)
    )
    # and the worker probed them all: the live one Ready, the dead ones Unreachable
    wait_for(lambda: HealthSample.objects.count() == 5, timeout=60, what="five health samples")
    live.refresh_from_db()
    assert live.status == "ready"
    assert set(
        Cluster.objects.filter(name__startswith="fan-dead").values_list("status", flat=True)
    ) == {"unreachable"}
