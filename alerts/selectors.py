"""Reads of alerts, rules and silences, scoped to what the user may see."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.permissions import AnyUser, restrict
from alerts.choices import SHOWN_STATES, AlertState
from alerts.filtersets import shown_state_q
from alerts.models import Alert, AlertRule, Silence


def alert_list(*, user: AnyUser) -> QuerySet[Alert]:
    return restrict(Alert.objects.all(), user, "view").select_related(
        "team", "rule", "cluster", "acknowledged_by"
    )


def rule_list(*, user: AnyUser) -> QuerySet[AlertRule]:
    return restrict(AlertRule.objects.all(), user, "view").select_related("team", "cluster_set")


def silence_list(*, user: AnyUser) -> QuerySet[Silence]:
    return restrict(Silence.objects.all(), user, "view").select_related("team", "created_by")


def state_counts(alerts: QuerySet[Alert]) -> dict[str, int]:
    """How many alerts are in each shown state (one query)."""
    aggregates = {state: Count("pk", filter=shown_state_q(state)) for state in SHOWN_STATES}
    return {k: int(v) for k, v in alerts.aggregate(**aggregates).items()}


def firing_by_severity(alerts: QuerySet[Alert]) -> dict[str, int]:
    rows = alerts.filter(state=AlertState.FIRING).values("severity").annotate(n=Count("pk"))
    return {row["severity"]: row["n"] for row in rows}
