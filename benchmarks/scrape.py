"""Rendering `/metrics` for a fleet of 10,000 clusters (issue 24: under 500 ms).

The fleet is the synthetic one of `fleet.seed_placement` (a mix of providers, regions and
statuses), topped up to the asked size, with a few policies judged on every cluster so the
compliance queries have 10,000 newest results per policy to count, and three cluster sets
(by label selector) for compliance per set. The render is the
view's (`metrics.views.render`: every collector, the database, Redis and broker round
trips), timed in process; the first render warms the connections and is not counted.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.db import connection
from django.utils import timezone

from benchmarks import fleet
from benchmarks.results import Row, percentile
from clusters.models import Cluster, ClusterSet
from policies.models import Policy, PolicyEvaluation

TARGET_MS = 500.0
TEAM = "bench-metrics"
POLICIES = 5


def _seed(clusters: int) -> float:
    started = time.perf_counter()
    missing = clusters - Cluster.objects.count()
    if missing > 0:
        fleet.seed_placement(count=missing, team_name=TEAM, prefix="mx")
    owner = fleet.team(TEAM)
    ids = list(Cluster.objects.order_by("pk").values_list("pk", flat=True)[:clusters])
    for env in ("prod", "staging", "dev"):  # compliance per set: a query per set
        ClusterSet.objects.get_or_create(
            name=f"bench-metrics-{env}", defaults={"team": owner, "selector": f"env={env}"}
        )
    now = timezone.now()
    run = uuid.uuid4()
    for number in range(POLICIES):
        policy, _ = Policy.objects.get_or_create(team=owner, name=f"bench-metrics-{number}")
        if policy.evaluations.exists():  # results go with the clusters `fleet.reset` empties
            continue
        PolicyEvaluation.objects.bulk_create(
            [
                PolicyEvaluation(
                    policy=policy,
                    cluster_id=pk,
                    run_id=run,
                    status="noncompliant" if (pk + number) % 7 == 0 else "compliant",
                    policy_generation=1,
                    evaluated_at=now,
                )
                for pk in ids
            ],
            batch_size=5000,
        )
    with connection.cursor() as cursor:  # what autovacuum does after such a bulk insert
        cursor.execute("VACUUM ANALYZE clusters_cluster, policies_policyevaluation")
    return time.perf_counter() - started


def _time(renders: int) -> tuple[list[float], int]:
    from metrics.views import render

    render()  # warm: connections, the first queries' plans
    times, size = [], 0
    for _ in range(renders):
        started = time.perf_counter()
        size = len(render())
        times.append((time.perf_counter() - started) * 1000)
    return times, size


def run(*, clusters: int, renders: int) -> list[Row]:
    seconds = _seed(clusters)
    total = Cluster.objects.count()
    seeded = f"seed {total} clusters, {POLICIES} policies judged, 3 cluster sets"
    rows = [Row("setup", seeded, f"{seconds:.1f} s")]
    for per_cluster in (False, True):
        settings.KEELSON_METRICS_PER_CLUSTER = per_cluster
        times, size = _time(renders)
        p50, p95 = percentile(times, 50), percentile(times, 95)
        label = "with per-cluster series" if per_cluster else "default (aggregates only)"
        rows.append(
            Row(
                "metrics",
                f"render /metrics, {total} clusters, {label}",
                f"p50 {p50:.0f} ms, p95 {p95:.0f} ms ({size / 1024:.0f} KiB)",
                target="" if per_cluster else f"< {TARGET_MS:.0f} ms (p95)",
                ok=None if per_cluster else p95 < TARGET_MS,
                value=p95,
                detail={"renders": renders, "bytes": size, "times_ms": times},
            )
        )
    settings.KEELSON_METRICS_PER_CLUSTER = False
    return rows
