"""Who may start a Kubernetes upgrade through an update run, and how a refusal reads: a
failed step with the reason, never an exception in the run's check."""

from __future__ import annotations

import pytest

from accounts.models import Team
from clusters.choices import Lifecycle
from clusters.models import Cluster, ClusterProvisioning
from operations.models import Operation
from tests.factories import Member, make_cluster
from updates.changes import change_for
from updates.changes.base import Step

pytestmark = pytest.mark.django_db


def capi_cluster(team: Team) -> Cluster:
    """A cluster Keelson built with Cluster API on AWS, at v1.27.3, whose management
    cluster `mgmt-gone` is not registered (any more)."""
    cluster = make_cluster(team=team, name="eks-7", provider="aws")
    ClusterProvisioning.objects.create(
        cluster=cluster,
        provider="capi",
        lifecycle=Lifecycle.ACTIVE,
        spec={
            "provider": "capi",
            "region": "eu-west-1",
            "kubernetes_version": "v1.27.3",
            "node_pools": [{"name": "general", "instance_type": "m5.large", "count": 2}],
            "params": {"management_cluster": "mgmt-gone", "infrastructure": "aws"},
        },
    )
    return cluster


def test_only_an_admin_of_the_team_upgrades_as_the_cluster_api_requires(
    team: Team, owner: Member, operator: Member, viewer: Member
) -> None:
    cluster = capi_cluster(team)
    change = change_for("kubernetes_version", team=team, params={"version": "1.28.0"})

    # when an operator's run reaches the cluster, then it fails there with the reason
    for member in (operator, viewer):
        state = change.start(cluster, actor=member.user)
        assert change.poll(cluster, state) == Step(
            "failed",
            f"Upgrading eks-7 takes an admin of team payments; {member.user.username} is not one.",
        )
    assert not Operation.objects.exists()

    # when an admin's run reaches it, then the provider's own refusal is the failed step
    state = change.start(cluster, actor=owner.user)
    assert change.poll(cluster, state) == Step(
        "failed", "params.management_cluster: no registered cluster named 'mgmt-gone'."
    )
    assert (state["from"], state["to"]) == ("v1.27.3", "v1.28.0")
    assert not Operation.objects.exists()
