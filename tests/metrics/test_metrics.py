"""`/metrics`: who may read it, and fleet figures equal to what was seeded (counted by hand)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import Team
from clusters.choices import ClusterStatus
from clusters.models import Cluster, ClusterSet
from costs.models import CostAllocation
from metrics import tasks
from policies.models import Policy, PolicyEvaluation
from tests.factories import make_team

TOKEN = "scrape-token-0123456789abcdef"
pytestmark = pytest.mark.django_db


@pytest.fixture
def protected(settings: Any) -> None:
    settings.KEELSON_METRICS_TOKEN = TOKEN
    settings.KEELSON_METRICS_ALLOWED_NETWORKS = []


def scrape(client: Client, **extra: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **extra)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def named(samples: dict[Any, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def test_off_without_token_or_networks(client: Client, settings: Any) -> None:
    settings.KEELSON_METRICS_TOKEN = ""
    settings.KEELSON_METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_token_required_and_wrong_token_refused(
    client: Client, protected: None, caplog: pytest.LogCaptureFixture
) -> None:
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    assert wrong.content == b""  # no detail
    basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")
    assert basic.status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert TOKEN not in caplog.text
    assert "not-the-token" not in caplog.text


def test_network_allow_list(client: Client, settings: Any) -> None:
    import ipaddress

    settings.KEELSON_METRICS_TOKEN = ""
    settings.KEELSON_METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.21.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    # With a token as well, both are needed.
    settings.KEELSON_METRICS_TOKEN = TOKEN
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 401
    ok = client.get("/metrics", REMOTE_ADDR="10.20.3.4", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200
    outside = client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert outside.status_code == 403


def _cluster(team: Team, name: str, **fields: Any) -> Cluster:
    # Seen a minute ago: judged clusters (not Pending), so they have a health score.
    fields.setdefault("last_seen_at", timezone.now() - timedelta(minutes=1))
    return Cluster.objects.create(name=name, team=team, **fields)


@pytest.fixture
def seeded() -> dict[str, Any]:
    red, blue = make_team(name="red"), make_team(name="blue")
    a = _cluster(
        red, "a", status=ClusterStatus.READY, provider="aws", region="eu-west-1",
        node_count=4, nodes_ready=4, capacity_cpu_millis=8000, capacity_memory_bytes=2**34,
        api_latency_ms=120.0, labels={"env": "prod"},
    )  # fmt: skip
    b = _cluster(
        red, "b", status=ClusterStatus.READY, provider="aws", region="eu-west-1",
        node_count=2, nodes_ready=2, capacity_cpu_millis=4000, labels={"env": "prod"},
    )  # fmt: skip
    c = _cluster(
        blue, "c", status=ClusterStatus.DEGRADED, status_reason="NodesNotReady",
        provider="gcp", region="us-central1", node_count=4, nodes_ready=3,
        capacity_cpu_millis=2500,
    )  # fmt: skip
    _cluster(blue, "d", status=ClusterStatus.UNREACHABLE, provider="gcp", region="us-central1")
    prod = ClusterSet.objects.create(name="prod", team=red, selector="env=prod")
    policy = Policy.objects.create(team=red, name="no-latest")
    now = timezone.now()
    run = uuid.uuid4()

    def result(cluster: Cluster, status: str, at: Any) -> None:
        PolicyEvaluation.objects.create(
            policy=policy, cluster=cluster, run_id=run, status=status,
            policy_generation=1, evaluated_at=at,
        )  # fmt: skip

    # a: noncompliant then compliant (the newer counts); b: noncompliant; c: compliant.
    result(a, "noncompliant", now - timedelta(hours=2))
    result(a, "compliant", now - timedelta(hours=1))
    result(b, "noncompliant", now - timedelta(hours=1))
    result(c, "compliant", now - timedelta(hours=1))
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def cost(team: Team, total: str, hour: Any, namespace: str) -> None:
        CostAllocation.objects.create(
            cluster=a, cluster_name="a", hour=hour, namespace=namespace, team=team,
            team_name=team.name, provider="aws", cpu_cost=0, ram_cost=0, gpu_cost=0,
            total_cost=Decimal(total),
        )  # fmt: skip

    cost(red, "10.50", month, "web")
    cost(red, "2.25", month + timedelta(hours=1), "web")
    cost(red, "99", month - timedelta(hours=1), "web")  # last month: not counted
    cost(blue, "4", month, "batch")
    return {"set": prod}


def test_fleet_values_equal_what_was_seeded(
    client: Client, protected: None, seeded: dict[str, Any]
) -> None:
    samples = scrape(client)
    clusters = named(samples, "keelson_clusters")
    assert clusters == {
        (("provider", "aws"), ("region", "eu-west-1"), ("status", "ready")): 2,
        (("provider", "gcp"), ("region", "us-central1"), ("status", "degraded")): 1,
        (("provider", "gcp"), ("region", "us-central1"), ("status", "unreachable")): 1,
    }
    assert samples[("keelson_fleet_nodes", ())] == 10
    assert samples[("keelson_fleet_nodes_ready", ())] == 9
    assert samples[("keelson_fleet_cpu_capacity_cores", ())] == 14.5
    assert samples[("keelson_fleet_memory_capacity_bytes", ())] == 2**34
    results = named(samples, "keelson_policy_results")
    assert results[(("policy", "no-latest"), ("status", "compliant"), ("team", "red"))] == 2
    assert results[(("policy", "no-latest"), ("status", "noncompliant"), ("team", "red"))] == 1
    ratio = named(samples, "keelson_policy_compliance_ratio")
    assert ratio == {(("policy", "no-latest"), ("team", "red")): pytest.approx(2 / 3)}
    # The prod set is a and b: a compliant, b noncompliant.
    sets = named(samples, "keelson_cluster_set_compliance_ratio")
    assert sets == {(("cluster_set", "prod"), ("team", "red")): 0.5}
    cost = named(samples, "keelson_team_cost_month")
    assert cost == {
        (("currency", "USD"), ("team", "blue")): 4.0,
        (("currency", "USD"), ("team", "red")): 12.75,
    }


def test_per_cluster_series_only_when_asked(
    client: Client, protected: None, seeded: dict[str, Any], settings: Any
) -> None:
    samples = scrape(client)
    assert not named(samples, "keelson_cluster_health_score")
    assert not named(samples, "keelson_cluster_nodes")
    settings.KEELSON_METRICS_PER_CLUSTER = True
    samples = scrape(client)
    # a, b: all nodes ready 100; c: 3 of 4 ready (Degraded for its nodes) 75; d: 0.
    assert named(samples, "keelson_cluster_health_score") == {
        (("cluster", "a"), ("team", "red")): 100.0,
        (("cluster", "b"), ("team", "red")): 100.0,
        (("cluster", "c"), ("team", "blue")): 75.0,
        (("cluster", "d"), ("team", "blue")): 0.0,
    }
    assert named(samples, "keelson_cluster_nodes")[(("cluster", "c"), ("team", "blue"))] == 4
    assert named(samples, "keelson_cluster_api_latency_seconds") == {
        (("cluster", "a"), ("team", "red")): 0.12
    }


def test_request_latency_by_view_name(client: Client, protected: None) -> None:
    client.get("/healthz")
    client.get("/no/such/page/12345")
    samples = scrape(client)
    counts = named(samples, "keelson_http_request_duration_seconds_count")
    assert counts[(("method", "GET"), ("view", "healthz"))] >= 1
    assert counts[(("method", "GET"), ("view", "<unresolved>"))] >= 1
    assert not any("12345" in str(labels) for labels in counts)


def test_task_counters_from_redis(client: Client, protected: None, settings: Any) -> None:
    settings.KEELSON_REDIS_PREFIX = f"metrics-test-{uuid.uuid4().hex[:8]}"
    try:
        tasks.record(task="clusters.tasks.x", queue="clusters", seconds=0.07)
        tasks.record(task="clusters.tasks.x", queue="clusters", seconds=3.0)
        tasks.record(task="clusters.tasks.x", queue="clusters", failed=True)
        samples = scrape(client)
    finally:
        tasks.client().delete(tasks.key())
    labels = (("queue", "clusters"), ("task", "clusters.tasks.x"))
    assert samples[("keelson_celery_task_duration_seconds_count", labels)] == 2
    assert samples[("keelson_celery_task_duration_seconds_sum", labels)] == pytest.approx(3.07)
    buckets = {
        dict(k)["le"]: v
        for k, v in named(samples, "keelson_celery_task_duration_seconds_bucket").items()
    }
    assert buckets["0.05"] == 0
    assert buckets["0.1"] == 1
    assert buckets["2.5"] == 1
    assert buckets["5.0"] == 2
    assert buckets["+Inf"] == 2
    assert samples[("keelson_celery_task_failures_total", labels)] == 1
    assert samples[("keelson_broker_up", ())] == 1
    depths = named(samples, "keelson_celery_queue_messages")
    assert all(value >= 0 for value in depths.values())


def test_policy_compliance_without_cluster_sets(
    client: Client, protected: None, seeded: dict[str, Any]
) -> None:
    seeded["set"].delete()
    samples = scrape(client)
    assert named(samples, "keelson_policy_compliance_ratio") == {
        (("policy", "no-latest"), ("team", "red")): pytest.approx(2 / 3)
    }
    assert not named(samples, "keelson_cluster_set_compliance_ratio")


def test_grafana_dashboard_uses_exposed_series(
    client: Client, protected: None, seeded: dict[str, Any], settings: Any
) -> None:
    """Every keelson_* series the dashboard queries is one `/metrics` serves."""
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).parents[2] / "docs" / "grafana-keelson.json").read_text()
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bkeelson_[a-z_]+", expr)}
    assert len(used) >= 15
    settings.KEELSON_METRICS_PER_CLUSTER = True
    settings.KEELSON_REDIS_PREFIX = f"metrics-test-{uuid.uuid4().hex[:8]}"
    try:
        tasks.record(task="t", queue="default", seconds=1.0, failed=True)
        client.get("/healthz")
        served = {name for name, _ in scrape(client)}
    finally:
        tasks.client().delete(tasks.key())
    missing = used - served
    # A gauge nobody has incremented in this process is still served (at 0).
    assert not missing, missing
