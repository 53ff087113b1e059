"""A cluster seen for the first time gets compliance and cost at once, through a real worker,
not at the next sweep (10 minutes) or cost interval."""

from __future__ import annotations

import pytest

from clusters.services.collection import clusters_collect
from costs.models import CostAllocation
from localkube.env import LocalCluster
from policies.models import PolicyEvaluation
from policies.services.library import library_load
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_team

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube]


@pytest.mark.usefixtures("celery_worker")
def test_first_collection_brings_compliance_and_cost_at_once(kube_cluster: LocalCluster) -> None:
    # given: a cluster just registered (status Unknown), the policy library, no results
    team = make_team()
    library_load(team=team)
    cluster = register_local(kube_cluster, team=team, name="first-seen")
    assert not PolicyEvaluation.objects.filter(cluster=cluster).exists()
    assert not CostAllocation.objects.filter(cluster=cluster).exists()

    # when: its first collection finds it Ready
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    assert cluster.status == "ready"

    # then: the worker evaluates its policies and computes this hour's cost
    wait_for(
        lambda: PolicyEvaluation.objects.filter(cluster=cluster).exists(),
        timeout=120,
        what="the first compliance results",
    )
    wait_for(
        lambda: CostAllocation.objects.filter(cluster=cluster).exists(),
        timeout=120,
        what="the first hour of cost",
    )
