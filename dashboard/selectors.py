"""Fleet-wide aggregates for the overview, computed in the database (10,000 clusters stay
in PostgreSQL: only counts and the few rows shown leave it).

Health score (documented on the page):
- a cluster: none while it is being provisioned or has not answered its first probe
  (clusters/display.py: shown as Provisioning/Pending); Unreachable 0; Ready or Degraded
  100 x ready nodes / nodes (0 with no nodes),
  minus 25 when Degraded for another reason than nodes (pods failing, slow API), floored
  at 0; Unknown clusters have no score.
- a set of clusters (fleet, cluster set): the mean of its clusters' scores.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import (
    Avg,
    Case,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Greatest, TruncDay
from django.utils import timezone

from accounts.choices import Role
from accounts.permissions import AnyUser, has_role_anywhere
from clusters.choices import ClusterStatus
from clusters.display import not_judged_q, shown_counts
from clusters.models import Cluster, ClusterTransition
from clusters.selectors import cluster_list, cluster_set_list
from clusters.services.lifecycle import cluster_set_clusters
from costs.rollups import allocations_visible
from operations.choices import OperationState
from operations.pipelines import PipelineState, pipeline_liveness
from operations.selectors import operation_list
from policies.choices import ResultStatus
from policies.models import Policy, PolicyEvaluation
from policies.selectors import compliance_summary, percent, policy_list
from policies.services.compliance_counts import daily_counts

logger = logging.getLogger(__name__)


def with_health_score(
    clusters: QuerySet[Cluster], *, now: datetime | None = None
) -> QuerySet[Cluster]:
    nodes_ratio = ExpressionWrapper(
        Value(100.0) * F("nodes_ready") / Greatest(F("node_count"), Value(1)),
        output_field=FloatField(),
    )
    return clusters.annotate(
        health_score=Case(
            When(
                not_judged_q(now or timezone.now()),
                then=Value(None, output_field=FloatField()),
            ),
            When(status=ClusterStatus.UNREACHABLE, then=Value(0.0)),
            When(status=ClusterStatus.UNKNOWN, then=Value(None, output_field=FloatField())),
            When(node_count=0, then=Value(0.0)),
            When(
                Q(status=ClusterStatus.DEGRADED) & ~Q(status_reason="NodesNotReady"),
                then=Greatest(nodes_ratio - Value(25.0), Value(0.0)),
            ),
            default=nodes_ratio,
            output_field=FloatField(),
        )
    )


def fleet_overview(*, user: AnyUser) -> dict[str, Any]:
    clusters = cluster_list(user=user)
    now = timezone.now()
    by_status = shown_counts(clusters, now=now)
    scored = with_health_score(clusters, now=now)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    allocations = allocations_visible(user=user)
    month = allocations.filter(hour__gte=month_start)
    trend = list(
        allocations.filter(hour__gte=now - timedelta(days=30))
        .annotate(day=TruncDay("hour"))
        .values("day")
        .annotate(total=Sum("total_cost"))
        .order_by("day")
    )
    operations = operation_list(user=user)
    return {
        "generated_at": now,
        "total": sum(n for _, n in by_status),
        "by_status": by_status,
        "by_provider": list(
            clusters.values("provider").annotate(n=Count("id")).order_by("-n", "provider")
        ),
        "by_region": list(
            clusters.exclude(region="").values("region").annotate(n=Count("id")).order_by("-n")[:10]
        ),
        "fleet_score": scored.aggregate(score=Avg("health_score"))["score"],
        "worst": list(
            scored.filter(health_score__isnull=False)  # type: ignore[misc]
            .order_by("health_score", "name")
            .values("name", "status", "status_reason", "health_score")[:8]
        ),
        "cluster_sets": _set_scores(user),
        "cost_month": month.aggregate(total=Sum("total_cost"))["total"] or Decimal(0),
        "cost_trend": [
            {"day": row["day"].date().isoformat(), "total": float(row["total"])} for row in trend
        ],
        # By the name kept on the rows: a cluster deregistered this month still spent.
        "top_spenders": [
            # `present`: the cluster is still registered (a deregistered one keeps its cost
            # under its kept name, with nothing to link to).
            {
                "cluster__name": row["cluster_name"],
                "present": row["cluster_id"] is not None,
                "total": row["total"],
            }
            for row in month.values("cluster_name", "cluster_id")
            .annotate(total=Sum("total_cost"))
            .order_by("-total")[:5]
        ],
        "running": list(
            operations.filter(state__in=[OperationState.PENDING, OperationState.RUNNING]).order_by(
                "-created_at"
            )[:10]
        ),
        "recent_operations": list(operations.order_by("-created_at")[:5]),
        "events": list(
            ClusterTransition.objects.filter(cluster__in=clusters)
            .select_related("cluster")
            .order_by("-at")[:10]
        ),
        "compliance": compliance_overview(user=user, now=now),
    }


def compliance_overview(*, user: AnyUser, now: datetime) -> dict[str, Any]:
    """Compliance of the user's enabled policies: overall % of judged (policy, cluster)
    pairs from the newest results, the most violated policies, and a daily trend (each
    day: the compliance as of its end).

    Kept in the cache per set of policies, newest result id and day: a result is stored
    only when an outcome changes, so until the next one (or for a minute, which bounds
    what deleting a cluster leaves counted) every overview of the same policies is the
    same. The counts themselves are kept as outcomes change, so even the first call reads
    a few hundred rows (`policies.services.compliance_counts`)."""
    policies = policy_list(user=user).filter(enabled=True)
    ids = sorted(policies.values_list("pk", flat=True))
    if not ids:
        return _compliance_overview(policies, now)  # nothing to count
    newest = PolicyEvaluation.objects.aggregate(newest=Max("id"))["newest"]
    key = (
        "dashboard:compliance:"
        + hashlib.sha256(f"{ids}|{newest}|{now.date().isoformat()}".encode()).hexdigest()
    )
    found = _cached("get", key)
    if isinstance(found, dict):
        return found
    overview = _compliance_overview(policies, now)
    _cached("set", key, overview, COMPLIANCE_CACHE_SECONDS)
    return overview


COMPLIANCE_CACHE_SECONDS = 60


def _cached(operation: str, *args: Any) -> Any:
    """The cache, best effort: with Redis down the overview is computed every time."""
    try:
        return getattr(cache, operation)(*args)
    except Exception as error:
        logger.warning("cache unavailable (%s): computing the overview", type(error).__name__)
        return None


def _compliance_overview(policies: QuerySet[Policy], now: datetime) -> dict[str, Any]:
    summary = compliance_summary(policies)
    top = sorted(
        (
            {"policy": summary.names[pk][1], "team": summary.names[pk][0], **counts}
            for pk, counts in summary.policies.items()
            if counts[ResultStatus.NONCOMPLIANT]
        ),
        key=lambda row: (-row[ResultStatus.NONCOMPLIANT], row["policy"], row["team"]),
    )[:5]
    ids = list(summary.names)
    trend = compliance_trend(ids, now=now, days=30) if ids else []
    return {"overall": summary.overall, "top": top, "trend": trend, "policies": len(ids)}


def _set_scores(user: AnyUser) -> list[dict[str, Any]]:
    rows = []
    for cluster_set in cluster_set_list(user=user).order_by("name")[:20]:
        members = with_health_score(cluster_set_clusters(cluster_set=cluster_set))
        summary = members.aggregate(score=Avg("health_score"), n=Count("id"))
        rows.append({"name": cluster_set.name, "score": summary["score"], "clusters": summary["n"]})
    return rows


def compliance_trend(policy_ids: list[int], *, now: datetime, days: int) -> list[dict[str, Any]]:
    """Each day's compliance as of its end (UTC days), from the counts the evaluation
    trigger keeps (`policies.services.compliance_counts`): a pair counts from the day its
    outcome was found until the day a new one replaced it or its cluster left the fleet."""
    last = now.date()
    first = (now - timedelta(days=days)).date()
    trend: list[dict[str, Any]] = []
    for day, counts in daily_counts(policy_ids, first=first, last=last).items():
        value = percent(
            counts.get(ResultStatus.COMPLIANT, 0), counts.get(ResultStatus.NONCOMPLIANT, 0)
        )
        if value is not None:
            trend.append({"day": day.isoformat(), "total": value})
    return trend


def overdue_pipelines_for(*, user: AnyUser) -> list[PipelineState]:
    """The overdue pipelines, for the overview's banner: shown to superusers and team
    admins (those who run the hub or answer for a team's clusters), not to others."""
    if not has_role_anywhere(user, Role.ADMIN):
        return []
    return [state for state in pipeline_liveness() if state.overdue]
