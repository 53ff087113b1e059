"""When rules are evaluated: on events (a cluster's status changed, an operation ended)
for the rules those events concern, and periodically for the rest, each kind at its own
pace (evaluation.PERIOD). Then due groups notify: at once when a group's wait ends
(a flush task sent with that countdown), and at every periodic pass as a backstop."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.choices import RuleKind
from alerts.evaluation import PERIOD
from alerts.models import AlertRule
from alerts.services.lifecycle import (
    Outcome,
    due_by_group,
    groups_flush,
    rule_evaluate,
    seconds_until,
    silences_expired,
)
from clusters.models import Cluster
from core.celery import app

logger = logging.getLogger(__name__)
FLUSH_TASK = "alerts.tasks.alerts_flush_task"
STATUS_KINDS = (RuleKind.CLUSTER_STATUS, RuleKind.AGENT_SILENT)


def flush_soon(outcomes: list[Outcome], now: datetime) -> None:
    """Ask a worker to flush when the earliest touched group is due (after commit)."""
    due = due_by_group(outcomes)
    if not due:
        return
    countdown = seconds_until(min(due.values()), now)

    def send() -> None:
        try:
            app.send_task(FLUSH_TASK, countdown=countdown, queue="alerts", routing_key="alerts")
        except Exception:  # the broker is down: the periodic pass flushes
            logger.warning("alerts: could not queue a flush in %.0f s", countdown)

    transaction.on_commit(send)


def _evaluate(
    rules: list[AlertRule], now: datetime, cluster_ids: list[int] | None = None
) -> list[Outcome]:
    outcomes = []
    for rule in rules:
        try:
            outcomes.append(rule_evaluate(rule=rule, now=now, cluster_ids=cluster_ids))
        except Exception:  # one broken rule must not stop the others
            logger.exception("alerts: evaluating rule %s failed", rule.pk)
    return outcomes


def alerts_on_clusters(*, cluster_ids: list[int], now: datetime | None = None) -> int:
    """Clusters changed status: re-check the status rules of their teams for them only.
    Returns how many alerts fired or resolved."""
    now = now or timezone.now()
    teams = set(Cluster.objects.filter(pk__in=cluster_ids).values_list("team_id", flat=True))
    rules = list(
        AlertRule.objects.filter(
            team_id__in=teams, enabled=True, kind__in=STATUS_KINDS
        ).select_related("team", "cluster_set")
    )
    outcomes = _evaluate(rules, now, cluster_ids)
    flush_soon(outcomes, now)
    return sum(o.fired + o.resolved for o in outcomes)


def alerts_on_operation(*, team_id: int | None, now: datetime | None = None) -> int:
    """An operation failed or rolled back: re-check the team's operation rules."""
    if team_id is None:
        return 0  # an operation of no team: no team's rules
    now = now or timezone.now()
    rules = list(
        AlertRule.objects.filter(
            team_id=team_id, enabled=True, kind=RuleKind.OPERATION_FAILED
        ).select_related("team", "cluster_set")
    )
    outcomes = _evaluate(rules, now)
    flush_soon(outcomes, now)
    return sum(o.fired + o.resolved for o in outcomes)


def alerts_periodic(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic pass: every enabled rule whose kind is due, then silences that ended,
    then every due group. Idempotent: evaluating twice finds the same alerts."""
    now = now or timezone.now()
    due = Q()
    for kind, seconds in PERIOD.items():
        due |= Q(kind=kind) & (
            Q(evaluated_at__isnull=True) | Q(evaluated_at__lte=now - timedelta(seconds=seconds - 1))
        )
    rules = list(
        AlertRule.objects.filter(due, enabled=True)
        .select_related("team", "cluster_set")
        .order_by("pk")
    )
    outcomes = _evaluate(rules, now)
    unmuted = silences_expired(now=now)
    sent = groups_flush(now=now)
    flush_soon(outcomes, now)
    return {
        "rules": len(rules),
        "fired": sum(o.fired for o in outcomes),
        "resolved": sum(o.resolved for o in outcomes),
        "unmuted_groups": unmuted,
        "notifications": sent,
    }
