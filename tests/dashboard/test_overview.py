"""The fleet overview: aggregates in the database, the health score, team scoping."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.choices import Role
from clusters.choices import ClusterStatus
from clusters.health import Observation
from clusters.models import Cluster
from clusters.services.collection import cluster_record_observation
from dashboard.selectors import with_health_score
from fleet.asgi import application
from tests.factories import add_member, make_cluster, make_evaluation, make_team, make_user
from tests.fleet.test_websocket import _headers_for


def _viewer(team: Any) -> Any:
    user = make_user()
    add_member(team, user, Role.VIEWER)
    return user


@pytest.mark.django_db
def test_health_score_formula() -> None:
    team = make_team()
    make_cluster(team=team, name="ready", status="ready", node_count=4, nodes_ready=3)
    make_cluster(
        team=team,
        name="pods",
        status="degraded",
        status_reason="PodsFailing",
        node_count=4,
        nodes_ready=4,
    )
    make_cluster(
        team=team,
        name="nodes",
        status="degraded",
        status_reason="NodesNotReady",
        node_count=4,
        nodes_ready=2,
    )
    make_cluster(
        team=team,
        name="dead",
        status="unreachable",
        node_count=4,
        nodes_ready=4,
        last_seen_at=timezone.now() - timedelta(minutes=10),  # it answered once, then died
    )
    make_cluster(team=team, name="new", status="unknown")
    scored = with_health_score(Cluster.objects.all())
    scores = dict(scored.values_list("name", "health_score"))  # type: ignore[misc]
    assert scores == {"ready": 75.0, "pods": 75.0, "nodes": 50.0, "dead": 0.0, "new": None}


@pytest.mark.django_db
def test_overview_counts_and_links_with_a_constant_number_of_queries() -> None:
    team = make_team()
    for index in range(5):
        make_cluster(
            team=team,
            name=f"a-{index}",
            status="ready",
            provider="aws",
            region="eu-west-1",
            node_count=2,
            nodes_ready=2,
        )
    make_cluster(team=make_team(), name="other-team", status="unreachable")
    client = Client()
    client.force_login(_viewer(team))
    with CaptureQueriesContext(connection) as few:
        page = client.get("/").content.decode()
    assert '<strong data-count="ready">5</strong>' in page
    assert '<strong data-count="unreachable">0</strong>' in page  # not this user's cluster
    assert "/clusters/?provider=aws" in page
    for index in range(5, 60):
        make_cluster(
            team=team,
            name=f"a-{index}",
            status="degraded",
            provider="gcp",
            region="us-east1",
            node_count=2,
            nodes_ready=1,
        )
    with CaptureQueriesContext(connection) as many:
        page = client.get("/").content.decode()
    assert '<strong data-count="degraded">55</strong>' in page
    assert len(many) == len(few)


@pytest.mark.django_db(transaction=True)
def test_the_fleet_socket_only_tells_a_user_about_their_clusters() -> None:
    mine, theirs = make_team(), make_team()
    my_cluster = make_cluster(team=mine, name="mine", status="ready")
    their_cluster = make_cluster(team=theirs, name="theirs", status="ready")
    headers = _headers_for(_viewer(mine))

    def fail(cluster: Cluster) -> None:
        for _ in range(3):
            cluster_record_observation(
                cluster_id=cluster.pk,
                at=timezone.now(),
                inventory=None,
                observation=Observation(ClusterStatus.UNREACHABLE, "ProbeFailed", "down"),
            )

    async def scenario() -> list[dict[str, Any]]:
        socket = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        connected, _ = await socket.connect()
        assert connected
        first = await socket.receive_json_from(timeout=5)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, fail, their_cluster)
        assert await socket.receive_nothing(timeout=1.5)
        await loop.run_in_executor(None, fail, my_cluster)
        second = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return [first, second]

    first, second = asyncio.run(scenario())
    zero = dict.fromkeys(ClusterStatus.values, 0)
    assert first["data"]["counts"] == {**zero, "ready": 1}
    assert second["type"] == "fleet"
    assert second["data"]["changed"]["name"] == "mine"
    assert second["data"]["counts"] == {**zero, "unreachable": 1}


@pytest.mark.django_db
def test_compliance_panel_percent_top_violations_and_trend() -> None:
    from datetime import timedelta

    from policies.models import Policy

    # given two policies over two clusters, with yesterday's and today's results
    team = make_team(name="shop")
    eu, us = make_cluster(team=team, name="eu-1"), make_cluster(team=team, name="us-1")
    privileged = Policy.objects.create(team=team, name="no-privileged")
    probes = Policy.objects.create(team=team, name="probes")
    now = timezone.now()

    def result(policy: Policy, cluster: Cluster, status: str, days_ago: float) -> None:
        make_evaluation(
            policy=policy, cluster=cluster, status=status, at=now - timedelta(days=days_ago)
        )

    for cluster in (eu, us):
        result(privileged, cluster, "noncompliant", 1)
        result(probes, cluster, "noncompliant", 1)
    result(privileged, eu, "compliant", 0)  # fixed today
    result(probes, eu, "error", 0)  # not judged: leaves yesterday's out of today's newest
    # another team's noncompliance stays out
    other = make_team()
    result(Policy.objects.create(team=other, name="x"), make_cluster(team=other), "noncompliant", 0)
    client = Client()
    client.force_login(_viewer(team))
    page = client.get("/").content.decode()
    # then: newest results 1 compliant / 2 noncompliant / 1 error -> 33.3 %
    assert 'data-field="compliance">33.3 %' in page
    assert "1 compliant, 2 noncompliant, 1 not evaluable" in page
    assert page.index(">no-privileged<") > 0 and "/policies/shop/probes/" in page
    assert "/policies/" + other.name not in page
    # and the trend, as of each day's end: yesterday 0 %, today the headline's 33.3 %
    # (us-1 is still noncompliant on both; the error is not judged)
    from dashboard.selectors import compliance_overview

    user = _viewer(team)
    trend = compliance_overview(user=user, now=now)["trend"]
    assert [point["total"] for point in trend] == [0.0, 33.3]


@pytest.mark.django_db
def test_the_compliance_panel_is_cached_until_a_result_changes() -> None:
    from dashboard.selectors import compliance_overview
    from policies.models import Policy

    team = make_team()
    cluster = make_cluster(team=team)
    policy = Policy.objects.create(team=team, name="probes")
    now = timezone.now()
    make_evaluation(policy=policy, cluster=cluster, status="noncompliant", at=now)
    user = _viewer(team)
    assert compliance_overview(user=user, now=now)["overall"]["percent"] == 0.0
    with CaptureQueriesContext(connection) as queries:
        again = compliance_overview(user=user, now=now)
    assert again["overall"]["percent"] == 0.0
    # the user's teams, their policies and the newest result id: nothing counted
    assert len(queries) == 3, [q["sql"] for q in queries.captured_queries]
    # a new outcome is a new row: counted at once
    make_evaluation(policy=policy, cluster=cluster, status="compliant", at=now)
    assert compliance_overview(user=user, now=now)["overall"]["percent"] == 100.0
    # a policy disabled leaves the user's set: counted at once too
    Policy.objects.filter(pk=policy.pk).update(enabled=False)
    assert compliance_overview(user=user, now=now)["policies"] == 0


@pytest.mark.django_db
def test_the_main_pages_work_at_ten_thousand_clusters() -> None:
    # given a team with 10,000 clusters (bulk-created, as a large fleet's registry)
    team = make_team()
    statuses = ["ready", "degraded", "unreachable", "unknown"]
    Cluster.objects.bulk_create(
        Cluster(
            name=f"c-{index:05d}",
            team=team,
            status=statuses[index % 4],
            provider=["aws", "gcp", "azure"][index % 3],
            region=f"region-{index % 20}",
            node_count=3,
            nodes_ready=3 - index % 2,
        )
        for index in range(10_000)
    )
    client = Client()
    client.force_login(_viewer(team))
    # then each page aggregates in the database and shows one page of rows, not the fleet
    for path in ("/", "/clusters/", "/clusters/?status=unreachable&sort=-name", "/costs/"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        assert response.status_code == 200, path
        assert len(response.content) < 400_000, (path, len(response.content))
        assert len(queries) < 60, (path, len(queries))
    overview = client.get("/").content.decode()
    assert '<strong data-count="ready">2500</strong>' in overview
    listing = client.get("/clusters/?status=unreachable").content.decode()
    assert listing.count('href="/clusters/c-') <= 60  # one page


@pytest.mark.django_db
def test_the_compliance_trend_is_each_days_state_at_its_end() -> None:
    from datetime import timedelta

    from dashboard.selectors import compliance_trend
    from policies.models import Policy

    # given a pair that was noncompliant, then fixed, then not evaluable today, and a pair
    # found compliant five days ago and never changed since (no row after that)
    team = make_team()
    policy = Policy.objects.create(team=team, name="trend")
    moving, steady = make_cluster(team=team), make_cluster(team=team)
    now = timezone.now().replace(hour=12)

    def outcome(cluster: Cluster, status: str, days_ago: int) -> None:
        make_evaluation(
            policy=policy, cluster=cluster, status=status, at=now - timedelta(days=days_ago)
        )

    outcome(steady, "compliant", 5)
    outcome(moving, "noncompliant", 3)
    outcome(moving, "compliant", 1)
    outcome(moving, "error", 0)
    # then each day counts every pair's newest outcome by its end (errors are not judged)
    trend = compliance_trend([policy.pk], now=now, days=30)
    assert [point["total"] for point in trend] == [100.0, 100.0, 50.0, 50.0, 100.0, 100.0]
    assert trend[0]["day"] == (now - timedelta(days=5)).date().isoformat()
    assert trend[-1]["day"] == now.date().isoformat()
