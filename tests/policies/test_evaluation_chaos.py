"""A worker killed with SIGKILL mid-evaluation: the batch is redelivered to another worker,
which finishes it without judging any (policy, cluster) pair twice.

The test holds the evaluation lock of the batch's last cluster, as a dying worker would:
the batch judges and stores the other clusters, then waits for that one, and is killed
while it waits (deterministically mid-batch, whatever the machine's speed)."""

from __future__ import annotations

import os
import signal

import pytest
from django.db import connection
from django.db.models import Count

from clusters.services.collection import clusters_collect
from core.celery import app as celery_app
from localkube.env import LocalCluster
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation.locks import LOCK_CLASS
from policies.services.library import library_load
from policies.tasks import policies_evaluate_batch_task
from tests.clusters.helpers import register_local, wait_for
from tests.conftest import start_worker, stop_worker
from tests.factories import make_team

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_evaluation_finishes_the_batch_once(
    kube_cluster: LocalCluster,
) -> None:
    # given forty registrations of a real cluster, collected, and the bundled library
    team = make_team()
    clusters = [register_local(kube_cluster, team=team, name=f"eval-{n}") for n in range(40)]
    ids = [cluster.pk for cluster in clusters]
    clusters_collect(cluster_ids=ids)
    library_load(team=team)
    policies = Policy.objects.filter(team=team, enabled=True).count()
    celery_app.control.purge()
    held = ids[-1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, held])
    first = start_worker("evaluate-a")
    second = None
    try:
        policies_evaluate_batch_task.delay(ids)
        # when the worker dies after the other clusters were judged, waiting for the last
        wait_for(
            lambda: (
                PolicyEvaluation.objects.filter(cluster_id__in=ids).count()
                == (len(ids) - 1) * policies
            ),
            timeout=90,
            what="every cluster but the held one to be judged",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert not PolicyEvaluation.objects.filter(cluster_id=held).exists()
        # then another worker receives the batch again and finishes it
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, held])
        second = start_worker("evaluate-b")
        wait_for(
            lambda: (
                PolicyEvaluation.objects.filter(cluster_id__in=ids)
                .order_by()  # no default ordering inside DISTINCT
                .values("cluster_id")
                .distinct()
                .count()
                == len(ids)
            ),
            timeout=180,
            what="every cluster to be judged",
        )
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    # and no pair was judged twice (unchanged policy and inventory are skipped)
    pairs = (
        PolicyEvaluation.objects.filter(cluster_id__in=ids)
        .order_by()
        .values("policy_id", "cluster_id")
        .annotate(n=Count("id"))
    )
    assert len(pairs) == len(ids) * policies
    assert {row["n"] for row in pairs} == {1}
