"""Reads of policies and results, scoped to what the user may see."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import QuerySet

from fleet.accounts.choices import Role
from fleet.accounts.selectors import AnyUser, team_ids_with_role
from policies.choices import ResultStatus
from policies.models import Policy, PolicyEvaluation


def policy_list(*, user: AnyUser) -> QuerySet[Policy]:
    """Policies of the user's teams (all of them for a superuser)."""
    if not user.is_authenticated:
        return Policy.objects.none()
    if getattr(user, "is_superuser", False):
        return Policy.objects.all()
    return Policy.objects.filter(team_id__in=team_ids_with_role(user=user, minimum=Role.VIEWER))


def evaluation_list(*, user: AnyUser) -> QuerySet[PolicyEvaluation]:
    """Every result of the user's teams' policies, deleted policies' included (history)."""
    if not user.is_authenticated:
        return PolicyEvaluation.objects.none()
    if getattr(user, "is_superuser", False):
        return PolicyEvaluation.objects.all()
    teams = team_ids_with_role(user=user, minimum=Role.VIEWER)
    return PolicyEvaluation.objects.filter(policy__team_id__in=teams)


def latest_evaluations(policies: QuerySet[Policy]) -> QuerySet[PolicyEvaluation]:
    """The newest result of each (policy, cluster) pair (PostgreSQL DISTINCT ON)."""
    return (
        PolicyEvaluation.objects.filter(policy__in=policies.values("pk"))
        .order_by("policy_id", "cluster_id", "-evaluated_at", "-id")
        .distinct("policy_id", "cluster_id")
    )


def percent(compliant: int, noncompliant: int) -> float | None:
    """Compliance in percent of the judged pairs (errors are not judged), or None."""
    judged = compliant + noncompliant
    return round(100.0 * compliant / judged, 1) if judged else None


def compliance_summary(policies: QuerySet[Policy]) -> dict[str, Any]:
    """Fleet-wide compliance from the newest results: overall, per policy, per standard."""
    rows = latest_evaluations(policies).values_list("policy_id", "cluster_id", "status")
    per_policy: dict[int, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ResultStatus.values, 0)
    )
    for policy_id, _, status in rows:
        per_policy[policy_id][status] += 1
    names = dict(policies.values_list("pk", "name"))
    standards = dict(policies.values_list("pk", "standards"))
    per_standard: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ResultStatus.values, 0)
    )
    total = dict.fromkeys(ResultStatus.values, 0)
    for policy_id, counts in per_policy.items():
        for status, count in counts.items():
            total[status] += count
            for standard in standards.get(policy_id) or []:
                per_standard[standard][status] += count

    def entry(counts: dict[str, int]) -> dict[str, Any]:
        return {
            **counts,
            "percent": percent(counts[ResultStatus.COMPLIANT], counts[ResultStatus.NONCOMPLIANT]),
        }

    return {
        "overall": entry(total),
        "policies": {names[pk]: entry(counts) for pk, counts in per_policy.items() if pk in names},
        "standards": {name: entry(counts) for name, counts in sorted(per_standard.items())},
    }
