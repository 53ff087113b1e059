"""A cluster that has just become Ready is not skipped by a rollout started seconds later,
even by a process whose placement cache was warmed while the cluster was still Unknown
(issue 19: a new fleet looks right from its first minute)."""

from __future__ import annotations

import pytest

from applications.services import placement_simulate
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from localkube.env import LocalCluster
from tests.clusters.helpers import register_local
from tests.factories import make_team
from tests.placement.test_propagation import deployment, new_app, roll_out

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def test_rollout_right_after_the_first_ready_probe_lands_there(kube_cluster: LocalCluster) -> None:
    # given: a cluster just registered (Unknown), and an application placed by its label
    team = make_team()
    cluster = register_local(kube_cluster, team=team)
    Cluster.objects.filter(pk=cluster.pk).update(labels={"shop": "yes"})
    application = new_app(team, placement={"selector": "shop=yes"})
    # ... whose placement this process already computed while the cluster was Unknown
    before = placement_simulate(application=application)
    assert [c["cluster"] for c in before.chosen] == []

    # when: the first probe finds it Ready, and a rollout starts at once
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    assert cluster.status == "ready", cluster.status_message
    operation = roll_out(application)

    # then: the rollout chose it and the application runs there
    assert operation.state == "succeeded", operation.error
    assert deployment(kube_cluster, application.namespace) is not None
