"""What each rule kind finds now: the subjects (a cluster, a budget, an operation, a
policy on a cluster) whose condition holds, each with the labels that identify and route
its alert. Reads only; the lifecycle (services/lifecycle.py) turns subjects into alerts.

Cluster kinds query only the clusters in the condition (an indexed status filter), so a
fleet of 10,000 with 40 unreachable reads 40 rows."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Q, QuerySet

from alerts.choices import RuleKind
from alerts.models import AlertRule
from clusters.choices import ClusterMode
from clusters.eol import eol_for
from clusters.labels import LabelSelector
from clusters.models import AgentToken, Cluster
from clusters.services.lifecycle import cluster_set_clusters
from costs.models import Budget
from costs.services import budget_status
from operations.choices import OperationState
from operations.models import Operation
from policies.choices import ResultStatus
from policies.models import Policy
from policies.selectors import compliance_summary, latest_evaluations, percent

# How often the periodic pass re-checks a kind (seconds); events re-check cluster and
# operation kinds at once.
PERIOD = {
    RuleKind.CLUSTER_STATUS: 30,
    RuleKind.AGENT_SILENT: 30,
    RuleKind.OPERATION_FAILED: 60,
    RuleKind.CRITICAL_VIOLATION: 300,
    RuleKind.COMPLIANCE: 600,
    RuleKind.BUDGET_FORECAST: 600,
    RuleKind.VERSION_EOL: 3600,
    RuleKind.AGENT_TOKEN: 600,
}
CLUSTER_KINDS = (
    RuleKind.CLUSTER_STATUS,
    RuleKind.AGENT_SILENT,
    RuleKind.VERSION_EOL,
    RuleKind.AGENT_TOKEN,
)
_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")
RESERVED = {"alertname", "rule_kind", "severity", "team", "cluster", "region", "provider"}


@dataclass(frozen=True)
class Subject:
    key: str  # what identifies it within the rule ("cluster:12")
    name: str  # what people read ("prod-eu-1")
    labels: dict[str, str]
    summary: str
    description: str = ""
    starts_at: datetime | None = None
    cluster_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def cluster_labels(cluster: Cluster) -> dict[str, str]:
    """A cluster's alert labels: its name, region, provider, environment and its own
    labels (names made Prometheus-safe; the reserved ones are not overridden)."""
    labels = {
        _LABEL_NAME.sub("_", key): str(value)
        for key, value in (cluster.labels or {}).items()
        if _LABEL_NAME.sub("_", key) not in RESERVED
    }
    labels.update(
        cluster=cluster.name,
        region=cluster.region,
        provider=cluster.provider,
        environment=cluster.environment or labels.get("environment", ""),
    )
    return labels


def scoped_clusters(rule: AlertRule) -> QuerySet[Cluster]:
    """The team's clusters in the rule's scope (cluster set and selector both apply)."""
    clusters = Cluster.objects.filter(team_id=rule.team_id)
    if rule.cluster_set_id is not None and rule.cluster_set is not None:
        clusters = clusters.filter(
            pk__in=cluster_set_clusters(cluster_set=rule.cluster_set).values("pk")
        )
    if rule.selector:
        clusters = clusters.filter(LabelSelector.parse(rule.selector).to_q())
    return clusters


_CLUSTER_FIELDS = (
    "name",
    "region",
    "provider",
    "environment",
    "labels",
    "status",
    "status_message",
    "status_changed_at",
    "kubernetes_version",
    "last_seen_at",
    "created_at",
)


def _cluster_status(rule: AlertRule, clusters: QuerySet[Cluster], now: datetime) -> list[Subject]:
    status = rule.params.get("status", "unreachable")
    since = now - timedelta(minutes=int(rule.params.get("for_minutes", 0)))
    found = clusters.filter(status=status).filter(
        Q(status_changed_at__lte=since) | Q(status_changed_at__isnull=True)
    )
    return [
        Subject(
            key=f"cluster:{c.pk}",
            name=c.name,
            labels=cluster_labels(c),
            summary=f"{c.name} is {status}",
            description=c.status_message,
            starts_at=c.status_changed_at,
            cluster_id=c.pk,
        )
        for c in found.only(*_CLUSTER_FIELDS)
    ]


def _agent_silent(rule: AlertRule, clusters: QuerySet[Cluster], now: datetime) -> list[Subject]:
    minutes = int(rule.params.get("for_minutes", 15))
    cutoff = now - timedelta(minutes=minutes)
    found = clusters.filter(mode=ClusterMode.PULL).filter(
        Q(last_seen_at__lt=cutoff) | Q(last_seen_at__isnull=True, created_at__lt=cutoff)
    )
    return [
        Subject(
            key=f"cluster:{c.pk}",
            name=c.name,
            labels=cluster_labels(c),
            summary=f"The agent of {c.name} has been silent for over {minutes} minutes",
            starts_at=c.last_seen_at or c.created_at,
            cluster_id=c.pk,
        )
        for c in found.only(*_CLUSTER_FIELDS)
    ]


def _version_eol(rule: AlertRule, clusters: QuerySet[Cluster], now: datetime) -> list[Subject]:
    horizon = (now + timedelta(days=int(rule.params.get("days_before", 0)))).date()
    subjects = []
    for c in clusters.exclude(kubernetes_version="").only(*_CLUSTER_FIELDS):
        end = eol_for(c.provider, c.kubernetes_version)
        if end is not None and end <= horizon:
            past = "reached its end of life" if end <= now.date() else "reaches its end of life"
            subjects.append(
                Subject(
                    key=f"cluster:{c.pk}",
                    name=c.name,
                    labels={**cluster_labels(c), "version": c.kubernetes_version},
                    summary=f"{c.name} runs Kubernetes {c.kubernetes_version}, which {past} "
                    f"on {end.isoformat()}",
                    cluster_id=c.pk,
                )
            )
    return subjects


def _agent_token(rule: AlertRule, clusters: QuerySet[Cluster], now: datetime) -> list[Subject]:
    """Pull clusters whose every live agent token expires within `days_before` days. The
    agent rotates at half-life, so this means rotation has been failing for a while; tokens
    without an expiry (issued before expiry existed) never count."""
    horizon = now + timedelta(days=int(rule.params.get("days_before", 7)))
    last = {
        row["cluster"]: row["last"]
        for row in AgentToken.objects.filter(
            cluster__in=clusters.filter(mode=ClusterMode.PULL),
            kind=AgentToken.Kind.AGENT,
            revoked_at__isnull=True,
        )
        .values("cluster")
        .annotate(last=Max("expires_at"))
        .filter(last__lte=horizon)
    }
    subjects = []
    for c in clusters.filter(pk__in=last).only(*_CLUSTER_FIELDS):
        ends = last[c.pk]
        past = "expired" if ends <= now else "expires"
        subjects.append(
            Subject(
                key=f"cluster:{c.pk}",
                name=c.name,
                labels=cluster_labels(c),
                summary=f"The agent token of {c.name} {past} on {ends:%Y-%m-%d %H:%M} UTC",
                description="The agent rotates its token at half its lifetime; check the "
                "agent's logs and that it reaches the hub.",
                cluster_id=c.pk,
            )
        )
    return subjects


def _operation_failed(rule: AlertRule, _: QuerySet[Cluster], now: datetime) -> list[Subject]:
    params = rule.params
    window = now - timedelta(hours=int(params.get("window_hours", 24)))
    bad = Q(state=OperationState.FAILED)
    if params.get("rolled_back", True):
        bad |= Q(result__has_key="rolled_back") & ~Q(result__rolled_back=[])
    found = Operation.objects.filter(bad, team_id=rule.team_id, finished_at__gte=window)
    if params.get("kinds"):
        found = found.filter(kind__in=params["kinds"])
    subjects = []
    for op in found.only("kind", "target_repr", "state", "error", "message", "finished_at"):
        what = "failed" if op.state == OperationState.FAILED else "rolled back"
        subjects.append(
            Subject(
                key=f"operation:{op.pk}",
                name=f"{op.kind} {op.target_repr}".strip(),
                labels={
                    "operation": str(op.pk),
                    "operation_kind": op.kind,
                    "target": op.target_repr,
                },
                summary=f"{op.kind} of {op.target_repr or 'Keelson'} {what}",
                description=(op.error or op.message)[:500],
                starts_at=op.finished_at,
            )
        )
    return subjects


def _critical_violation(
    rule: AlertRule, clusters: QuerySet[Cluster], now: datetime
) -> list[Subject]:
    severities = (
        ["critical"] if rule.params.get("min_severity") == "critical" else ["critical", "high"]
    )
    policies = Policy.objects.filter(team_id=rule.team_id, severity__in=severities)
    rows = latest_evaluations(policies).select_related("policy", "cluster")
    scoped = set(clusters.values_list("pk", flat=True))
    subjects = []
    for row in rows:
        if (
            row.status != ResultStatus.NONCOMPLIANT
            or row.cluster is None
            or row.cluster_id not in scoped
        ):
            continue
        subjects.append(
            Subject(
                key=f"policy:{row.policy_id}:cluster:{row.cluster_id}",
                name=f"{row.policy.name} on {row.cluster.name}",
                labels={**cluster_labels(row.cluster), "policy": row.policy.name},
                summary=f"{row.cluster.name} violates {row.policy.severity} policy "
                f"{row.policy.name} ({row.violations_total} violations)",
                description=row.message[:500],
                starts_at=row.evaluated_at,
                cluster_id=row.cluster_id,
            )
        )
    return subjects


def _budget_forecast(rule: AlertRule, _: QuerySet[Cluster], now: datetime) -> list[Subject]:
    budgets = Budget.objects.filter(team_id=rule.team_id).select_related("cluster_set")
    if rule.params.get("budget"):
        budgets = budgets.filter(name=rule.params["budget"])
    subjects = []
    for budget in budgets:
        status = budget_status(budget, now)
        if status["forecast"] > budget.monthly_amount:
            subjects.append(
                Subject(
                    key=f"budget:{budget.pk}",
                    name=budget.name,
                    labels={"budget": budget.name},
                    summary=f"Budget {budget.name}: this month's forecast {status['forecast']} "
                    f"is above its amount {budget.monthly_amount}",
                    description=f"Spent so far: {status['spent']}.",
                )
            )
    return subjects


def compliance_now(rule: AlertRule) -> float | None:
    """The compliance percent the rule watches, from the newest results."""
    params = rule.params
    target, name = params.get("target", "fleet"), params.get("name", "")
    policies = Policy.objects.filter(team_id=rule.team_id)
    if target == "policy":
        policies = policies.filter(name=name)
    if target == "cluster_set":
        members = Cluster.objects.filter(team_id=rule.team_id, cluster_sets__name=name)
        rows = latest_evaluations(policies).filter(cluster__in=members)
        statuses = list(rows.values_list("status", flat=True))
        return percent(
            statuses.count(ResultStatus.COMPLIANT), statuses.count(ResultStatus.NONCOMPLIANT)
        )
    summary = compliance_summary(policies)
    if target == "standard":
        entry = summary.standards.get(name)
        return entry["percent"] if entry else None
    value: float | None = summary.overall["percent"]
    return value


def compliance_check(
    readings: list[list[Any]], current: float | None, *, now: datetime, params: dict[str, Any]
) -> tuple[str | None, list[list[Any]]]:
    """Why the compliance alert fires (None: it does not) and the readings to keep: the
    window's readings plus this one. A drop compares with the highest reading in the
    window. Pure."""
    window = now - timedelta(hours=int(params.get("window_hours", 24)))
    kept = [r for r in readings if datetime.fromisoformat(r[0]) >= window]
    if current is None:
        return None, kept
    reason = None
    below = params.get("below")
    if below is not None and current < below:
        reason = f"compliance is {current:g}%, below {below:g}%"
    drop = params.get("drop_points")
    if reason is None and drop is not None and kept:
        best = max(r[1] for r in kept)
        if best - current >= drop:
            reason = (
                f"compliance dropped from {best:g}% to {current:g}% (by {best - current:g} points)"
            )
    return reason, [*kept, [now.isoformat(), current]][-500:]


def _compliance(rule: AlertRule, _: QuerySet[Cluster], now: datetime) -> list[Subject]:
    current = compliance_now(rule)
    reason, readings = compliance_check(
        rule.state.get("readings", []), current, now=now, params=rule.params
    )
    AlertRule.objects.filter(pk=rule.pk).update(state={**rule.state, "readings": readings})
    if reason is None:
        return []
    target, name = rule.params.get("target", "fleet"), rule.params.get("name", "")
    what = "the fleet" if target == "fleet" else f"{target.replace('_', ' ')} {name}"
    return [
        Subject(
            key=f"compliance:{target}:{name}",
            name=what,
            labels={"target": target, "target_name": name},
            summary=f"Compliance of {what}: {reason}",
        )
    ]


EVALUATORS: dict[str, Callable[[AlertRule, QuerySet[Cluster], datetime], list[Subject]]] = {
    RuleKind.CLUSTER_STATUS: _cluster_status,
    RuleKind.AGENT_SILENT: _agent_silent,
    RuleKind.VERSION_EOL: _version_eol,
    RuleKind.AGENT_TOKEN: _agent_token,
    RuleKind.OPERATION_FAILED: _operation_failed,
    RuleKind.CRITICAL_VIOLATION: _critical_violation,
    RuleKind.BUDGET_FORECAST: _budget_forecast,
    RuleKind.COMPLIANCE: _compliance,
}


def rule_subjects(
    rule: AlertRule, *, now: datetime, cluster_ids: list[int] | None = None
) -> list[Subject]:
    """The subjects whose condition holds now; `cluster_ids` narrows a cluster kind to
    those clusters (an event about them)."""
    clusters = scoped_clusters(rule)
    if cluster_ids is not None:
        clusters = clusters.filter(pk__in=cluster_ids)
    return EVALUATORS[rule.kind](rule, clusters, now)
