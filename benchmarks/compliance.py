"""The overview's compliance panel at 10,000 clusters x 50 policies (issue 26: an uncached
panel in ≤ 100 ms), side by side with the query it replaced.

Seeds 50 policies judged on every cluster of the synthetic fleet (500,000 newest results),
then a change of outcome 5 days ago on one pair in ten (so the 30-day trend has a history
to walk), through the evaluation trigger like any stored result. Times the panel's
uncached computation (`dashboard.selectors._compliance_overview`: counts, top
violations, trend) and the newest-result-per-pair query and window trend it replaced
(kept here as `BEFORE_*`, the way placement keeps its old scheduler), and reports what
the trigger costs per stored result."""

from __future__ import annotations

import time

from django.db import connection
from django.utils import timezone

from benchmarks import fleet
from benchmarks.results import Row, percentile
from clusters.models import Cluster
from policies.models import Policy
from policies.services import compliance_counts

TARGET_MS = 100.0
TEAM = "bench-compliance"

BEFORE_COUNTS = """
SELECT policy_id, status, count(*) FROM (
    SELECT DISTINCT ON (policy_id, cluster_id) policy_id, status
    FROM policies_policyevaluation
    WHERE policy_id = ANY(%s) AND cluster_id IS NOT NULL
    ORDER BY policy_id, cluster_id, evaluated_at DESC, id DESC
) AS latest GROUP BY policy_id, status
"""
BEFORE_TREND = """
WITH spans AS (
    SELECT status, date_trunc('day', evaluated_at) AS since,
           date_trunc('day', lag(evaluated_at) OVER (
               PARTITION BY policy_id, cluster_id ORDER BY evaluated_at DESC, id DESC
           )) AS until
    FROM policies_policyevaluation
    WHERE policy_id = ANY(%s) AND evaluated_at <= now() AND cluster_id IS NOT NULL
)
SELECT day, status, sum(delta) FROM (
    SELECT greatest(since, now() - interval '30 days') AS day, status, 1 AS delta FROM spans
    WHERE until IS NULL OR until > now() - interval '30 days'
    UNION ALL
    SELECT until, status, -1 FROM spans WHERE until > now() - interval '30 days'
) deltas GROUP BY day, status
"""

INSERT = """
INSERT INTO policies_policyevaluation (
    policy_id, cluster_id, cluster_name, run_id, status, message, violations, errors,
    violations_total, errors_total, objects_checked, policy_generation, inventory_stamp,
    forced, evaluated_at, checked_at, digest)
SELECT p.id, c.id, c.name, gen_random_uuid(),
       CASE WHEN (c.id + p.id) %% %s = 0 THEN 'noncompliant' ELSE 'compliant' END,
       '', '[]', '[]', 0, 0, 0, 1, '', false, now() - %s * interval '1 day', now(), ''
FROM policies_policy p CROSS JOIN clusters_cluster c
WHERE p.id = ANY(%s) AND c.id = ANY(%s) AND (c.id + p.id) %% %s = 0
"""


def _seed(clusters: int, policies: int) -> tuple[list[int], int, float]:
    """Returns (policy ids, results stored, seconds the inserts took)."""
    missing = clusters - Cluster.objects.count()
    if missing > 0:
        fleet.seed_placement(count=missing, team_name=TEAM, prefix="cp")
    owner = fleet.team(TEAM)
    ids = list(Cluster.objects.order_by("pk").values_list("pk", flat=True)[:clusters])
    policy_ids = [
        Policy.objects.get_or_create(team=owner, name=f"bench-compliance-{n}")[0].pk
        for n in range(policies)
    ]
    stored, seconds = 0, 0.0
    if not Policy.objects.filter(pk__in=policy_ids, evaluations__isnull=False).exists():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            # every pair 20 days ago (one in 7 noncompliant), then one in ten flipped to
            # one in 3 noncompliant 5 days ago
            cursor.execute(INSERT, [7, 20, policy_ids, ids, 1])
            stored += cursor.rowcount
            cursor.execute(INSERT, [3, 5, policy_ids, ids, 10])
            stored += cursor.rowcount
        seconds = time.perf_counter() - started
        compliance_counts.compact(now=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE policies_policyevaluation, policies_compliancedelta")
    return policy_ids, stored, seconds


def _times(call: object, runs: int) -> list[float]:
    assert callable(call)
    call()  # warm: plans, connections
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def run(*, clusters: int, policies: int = 50, runs: int = 20) -> list[Row]:
    from dashboard.selectors import _compliance_overview

    policy_ids, stored, seconds = _seed(clusters, policies)
    rows: list[Row] = []
    if stored:
        rows.append(
            Row(
                "setup",
                f"store {stored:,} results through the evaluation trigger",
                f"{seconds:.1f} s ({1e6 * seconds / stored:.0f} µs per result)",
                value=seconds,
            )
        )
    chosen = Policy.objects.filter(pk__in=policy_ids)
    now = timezone.now()
    after = _times(lambda: _compliance_overview(chosen, now), runs)

    def before() -> None:
        with connection.cursor() as cursor:
            cursor.execute(BEFORE_COUNTS, [policy_ids])
            cursor.fetchall()
            cursor.execute(BEFORE_TREND, [policy_ids])
            cursor.fetchall()

    old = _times(before, max(3, runs // 4))
    p50, p99 = percentile(after, 50), percentile(after, 99)
    old50 = percentile(old, 50)
    rows.append(
        Row(
            "compliance",
            f"overview compliance panel, uncached, {clusters:,} clusters x {policies} policies",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (the queries it replaced: p50 {old50:.0f} ms,"
            f" {old50 / p50:.0f}x)",
            target=f"<= {TARGET_MS:.0f} ms (p99)",
            ok=p99 <= TARGET_MS,
            value=p99,
            detail={"times_ms": after, "before_ms": old},
        )
    )
    return rows
