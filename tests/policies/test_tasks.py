"""The sweep: beat's fan-out sends cluster batches to the policies queue; a real worker
evaluates them (and enforces enforce-mode policies)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps

from core.celery import app as celery_app
from localkube.env import LocalCluster
from policies.choices import ResultStatus
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation import policies_evaluate_fanout
from policies.services.evaluation import sweep as evaluation_sweep
from policies.services.library import library_load
from policies.tasks import policies_evaluate_batch_task
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_cluster, make_team


def test_policy_tasks_are_routed_to_the_policies_queue() -> None:
    for name in ("policies_evaluate_batch_task", "policies_evaluate_fanout_task"):
        route = celery_app.amqp.router.route({}, f"policies.tasks.{name}")
        assert route["queue"].name == "policies"
    assert policies_evaluate_batch_task.acks_late  # idempotent: redelivered if a worker dies


@pytest.mark.django_db
def test_the_data_migration_loads_the_library_into_existing_teams() -> None:
    team = make_team()
    migration = importlib.import_module("policies.migrations.0002_load_library")
    migration.load(apps, None)
    # 23 policies, plus the probe/lifecycle host and restricted /proc mount controls (issue 26)
    assert Policy.objects.filter(team=team, bundled=True).count() == 25


@pytest.mark.kube
@pytest.mark.usefixtures("celery_worker")
def test_fanout_batches_clusters_and_the_worker_stores_results(
    kube_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a live cluster and two without credentials, in batches of two
    monkeypatch.setattr(evaluation_sweep, "BATCH_SIZE", 2)
    team = make_team()
    live = register_local(kube_cluster, team=team, name="sweep-live")
    make_cluster(team=team, name="sweep-dead-1")
    make_cluster(team=team, name="sweep-dead-2")
    library_load(team=team)
    policies = Policy.objects.filter(team=team, enabled=True).count()
    sent: list[list[int]] = []
    original = policies_evaluate_batch_task.apply_async

    def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(list(kwargs["args"][0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(policies_evaluate_batch_task, "apply_async", spy)

    # when beat's task runs
    assert policies_evaluate_fanout() == 2

    # then three clusters went out in two messages and every policy was judged on each
    assert sorted(len(batch) for batch in sent) == [1, 2]
    wait_for(
        lambda: PolicyEvaluation.objects.count() == 3 * policies,
        timeout=120,
        what="a result per policy and cluster",
    )
    live_rows = PolicyEvaluation.objects.filter(cluster=live)
    assert not live_rows.filter(status=ResultStatus.ERROR).exists()
    version = live_rows.get(policy__name="ops-min-kubernetes-version")
    assert version.status == ResultStatus.NONCOMPLIANT  # the test clusters run 1.20
    dead = PolicyEvaluation.objects.exclude(cluster=live)
    assert set(dead.values_list("status", flat=True)) == {ResultStatus.ERROR}
