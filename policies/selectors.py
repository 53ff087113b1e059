"""Reads of policies and results, scoped to what the user may see."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from accounts.permissions import AnyUser, restrict
from policies.choices import ResultStatus
from policies.models import Policy, PolicyEvaluation
from policies.services.compliance_counts import current_counts


def policy_list(*, user: AnyUser) -> QuerySet[Policy]:
    """Policies of the user's teams (all of them for a superuser)."""
    return restrict(Policy.objects.all(), user, "view")


def latest_evaluations(policies: QuerySet[Policy]) -> QuerySet[PolicyEvaluation]:
    """The newest result of each (policy, cluster) pair (PostgreSQL DISTINCT ON)."""
    return (
        PolicyEvaluation.objects.filter(policy__in=policies.values("pk"), cluster__isnull=False)
        .order_by("policy_id", "cluster_id", "-evaluated_at", "-id")
        .distinct("policy_id", "cluster_id")
    )


def percent(compliant: int, noncompliant: int) -> float | None:
    """Compliance in percent of the judged pairs (errors are not judged), or None."""
    judged = compliant + noncompliant
    return round(100.0 * compliant / judged, 1) if judged else None


@dataclass
class Compliance:
    """Fleet-wide compliance from the newest results: overall, per policy (by id: names
    repeat across teams, each team has the bundled library) and per standard."""

    overall: dict[str, Any]
    policies: dict[int, dict[str, Any]]  # policy id -> counts and percent
    standards: dict[str, dict[str, Any]]
    names: dict[int, tuple[str, str]]  # policy id -> (team, name)

    def as_json(self) -> dict[str, Any]:
        """The API's shape: `policies` as a list naming each policy's team."""
        listed = sorted(self.policies.items(), key=lambda item: self.names[item[0]])
        return {
            "overall": self.overall,
            "policies": [
                {"team": self.names[pk][0], "name": self.names[pk][1], **counts}
                for pk, counts in listed
            ],
            "standards": self.standards,
        }


# Counted by the database: the newest result of each (policy, cluster) pair, grouped by
# policy and status (a fleet of 10,000 clusters and 50 policies has 500,000 pairs, and
# reading them into Python cost most of the overview's time).
def compliance_summary(policies: QuerySet[Policy]) -> Compliance:
    """Compliance of `policies` from the newest result of each on each cluster (the
    counts the evaluation trigger keeps: `policies.services.compliance_counts`)."""
    known = {
        pk: (team, name, standards or [])
        for pk, team, name, standards in policies.values_list(
            "pk", "team__name", "name", "standards"
        )
    }
    per_policy: dict[int, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ResultStatus.values, 0)
    )
    for policy_id, counts in current_counts(list(known)).items():
        for status, count in counts.items():
            if status in ResultStatus.values:
                per_policy[policy_id][status] += count
    per_standard: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ResultStatus.values, 0)
    )
    total = dict.fromkeys(ResultStatus.values, 0)
    for policy_id, counts in per_policy.items():
        for status, count in counts.items():
            total[status] += count
            for standard in known[policy_id][2]:
                per_standard[standard][status] += count

    def entry(counts: dict[str, int]) -> dict[str, Any]:
        return {
            **counts,
            "percent": percent(counts[ResultStatus.COMPLIANT], counts[ResultStatus.NONCOMPLIANT]),
        }

    return Compliance(
        overall=entry(total),
        policies={pk: entry(counts) for pk, counts in per_policy.items()},
        standards={name: entry(counts) for name, counts in sorted(per_standard.items())},
        names={pk: (team, name) for pk, (team, name, _) in known.items()},
    )
