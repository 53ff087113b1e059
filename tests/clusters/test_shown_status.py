"""New clusters look right from their first minute; stale figures say so (issue 19)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.choices import Role
from clusters.choices import ClusterStatus, Lifecycle
from clusters.display import pending_grace, shown_status
from clusters.models import Cluster, ClusterProvisioning
from dashboard.selectors import fleet_overview
from tests.factories import add_member, make_cluster, make_team, make_user

NOW = timezone.now()


def test_rules_of_the_shown_status() -> None:
    minute = timedelta(minutes=1)
    # being provisioned: Provisioning whatever the probes said
    assert (
        shown_status(
            status="unreachable",
            last_seen_at=None,
            created_at=NOW,
            lifecycle=Lifecycle.PROVISIONING,
            now=NOW,
        ).value
        == "provisioning"
    )
    # registered a minute ago, no answer yet: Pending (neutral), not Unreachable
    pending = shown_status(
        status="unreachable", last_seen_at=None, created_at=NOW - minute, lifecycle=None, now=NOW
    )
    assert (pending.value, pending.label, pending.is_real) == ("pending", "Pending", False)
    # still silent after the grace period: what the probes say
    late = NOW - pending_grace() - minute
    assert (
        shown_status(
            status="unreachable", last_seen_at=None, created_at=late, lifecycle=None, now=NOW
        ).value
        == "unreachable"
    )
    # it answered once and then died: Unreachable at once
    assert (
        shown_status(
            status="unreachable",
            last_seen_at=NOW - minute,
            created_at=NOW - minute,
            lifecycle=Lifecycle.ACTIVE,
            now=NOW,
        ).value
        == "unreachable"
    )


@pytest.mark.django_db
def test_a_new_cluster_is_pending_with_no_score_on_every_page(client: Client) -> None:
    # given a cluster registered seconds ago whose first probe failed (the API server is
    # still starting), and one being provisioned
    team = make_team()
    user = make_user()
    add_member(team, user, Role.VIEWER)
    make_cluster(team=team, name="fresh", status=ClusterStatus.UNREACHABLE, node_count=0)
    building = make_cluster(team=team, name="building", status=ClusterStatus.UNREACHABLE)
    ClusterProvisioning.objects.create(
        cluster=building, provider="local", spec={}, lifecycle=Lifecycle.PROVISIONING
    )
    # when
    overview = fleet_overview(user=user)
    client.force_login(user)
    listing = client.get("/clusters/").content.decode()
    detail = client.get("/clusters/fresh/").content.decode()
    home = client.get("/").content.decode()
    # then no red Unreachable and no 0/100 score anywhere
    counts = {status.value: n for status, n in overview["by_status"]}
    assert counts["unreachable"] == 0 and counts["pending"] == 1 and counts["provisioning"] == 1
    assert overview["fleet_score"] is None and overview["worst"] == []
    assert 'status-unreachable">Unreachable</span></td>' not in listing
    assert '<span class="status status-pending">Pending</span>' in listing
    assert '<span class="status status-provisioning">Provisioning</span>' in listing
    assert 'data-shown="pending">Pending</span>' in detail
    assert "waiting for the first answer" in detail
    assert 'data-count="unreachable">0<' in home and 'data-count-shown="pending">1<' in home
    # the API keeps the probe's verdict
    assert Cluster.objects.get(name="fresh").status == ClusterStatus.UNREACHABLE


@pytest.mark.django_db
def test_unreachable_cluster_figures_are_marked_stale_with_their_age(client: Client) -> None:
    # given a cluster last seen 12 minutes ago with 3 nodes and 40 ms latency, now Unreachable
    team = make_team()
    user = make_user()
    add_member(team, user, Role.VIEWER)
    seen = timezone.now() - timedelta(minutes=12)
    make_cluster(
        team=team,
        name="gone",
        status=ClusterStatus.UNREACHABLE,
        node_count=3,
        nodes_ready=3,
        api_latency_ms=40,
        last_seen_at=seen,
    )
    make_cluster(team=team, name="fine", status=ClusterStatus.READY, last_seen_at=timezone.now())
    client.force_login(user)
    # when
    page = client.get("/clusters/gone/").content.decode()
    healthy = client.get("/clusters/fine/").content.decode()
    # then nodes (summary and table), CPU, memory and latency carry the last good probe's age
    assert page.count("stale: from the last good probe") == 5
    assert page.count(">12 minutes ago</time>") >= 5
    assert "stale" not in healthy.replace(".stale", "")
