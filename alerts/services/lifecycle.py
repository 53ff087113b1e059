"""Alerts' lifecycle: evaluate a rule, fire one alert per incident, resolve it when the
condition clears, group and notify (Alertmanager's semantics, grouping.py), acknowledge.

Evaluation reconciles: the subjects found now against the rule's firing alerts. A new
subject fires an alert (a partial unique index keeps one firing alert per fingerprint, so
a repeated evaluation or a racing worker never fires a second); a firing alert whose
subject is gone resolves. Each change marks its group due (`next_flush_at`); flushing a
due group sends at most one Notification through `notifications.services.dispatch`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.choices import AlertState
from alerts.evaluation import Subject, rule_subjects
from alerts.grouping import (
    Member,
    Timing,
    fingerprint,
    group_key,
    group_labels,
    next_flush,
    plan_flush,
)
from alerts.matchers import Matcher, all_match, parse_matcher
from alerts.models import Alert, AlertGroup, AlertRule, Silence
from audit.services import audit_record
from notifications import services as notifications
from notifications.types import AlertItem, Notification

logger = logging.getLogger(__name__)
LISTED = 10  # subjects named in a notification's summary


@dataclass
class Outcome:
    fired: int = 0
    resolved: int = 0
    due: list[tuple[int, datetime]] | None = None  # (group id, when it notifies)


def timing(rule: AlertRule) -> Timing:
    return Timing(rule.group_wait, rule.group_interval, rule.repeat_interval)


def rule_labels(rule: AlertRule, subject: Subject) -> dict[str, str]:
    return {
        **subject.labels,
        "alertname": rule.name,
        "rule_kind": rule.kind,
        "severity": rule.severity,
        "team": rule.team.name,
    }


def active_silences(team_id: int, now: datetime) -> list[tuple[Silence, list[Matcher]]]:
    silences = Silence.objects.filter(team_id=team_id, starts_at__lte=now, ends_at__gt=now)
    return [(s, [parse_matcher(m) for m in s.matchers]) for s in silences.order_by("pk")]


def silence_for(
    labels: dict[str, str], silences: list[tuple[Silence, list[Matcher]]]
) -> Silence | None:
    for silence, matchers in silences:
        if all_match(matchers, labels):
            return silence
    return None


def groups_mark_due(
    groups: Iterable[AlertGroup], rule: AlertRule, now: datetime
) -> list[tuple[int, datetime]]:
    due = []
    for group in groups:
        when = next_flush(
            now=now, first_at=group.first_at, last_flush_at=group.last_flush_at, timing=timing(rule)
        )
        if group.next_flush_at is None or when < group.next_flush_at:
            AlertGroup.objects.filter(pk=group.pk).update(next_flush_at=when)
            group.next_flush_at = when
        due.append((group.pk, group.next_flush_at))
    return due


def _group(rule: AlertRule, labels: dict[str, str], now: datetime) -> AlertGroup:
    grouped = group_labels(labels, rule.group_by)
    group, _ = AlertGroup.objects.get_or_create(
        key=group_key(rule.pk, grouped), defaults={"rule": rule, "labels": grouped, "first_at": now}
    )
    return group


@transaction.atomic
def rule_reconcile(
    *, rule: AlertRule, subjects: list[Subject], now: datetime, cluster_ids: list[int] | None = None
) -> Outcome:
    """Fire what is new, resolve what cleared. With `cluster_ids` only the alerts of those
    clusters are considered (an event about them said nothing of the others)."""
    firing = (
        Alert.objects.select_for_update()
        .filter(rule=rule, state=AlertState.FIRING)
        .only("fingerprint", "group_id")  # not the labels: a rule may have 10,000 firing
    )
    if cluster_ids is not None:
        firing = firing.filter(cluster_id__in=cluster_ids)
    current = {alert.fingerprint: alert for alert in firing}
    wanted = {fingerprint({"rule": str(rule.pk), "subject": s.key}): s for s in subjects}
    silences = active_silences(rule.team_id, now)
    touched: dict[int, AlertGroup] = {}
    groups: dict[str, AlertGroup] = {}  # by grouping labels: one lookup per group, not alert
    created = []
    for fp, subject in wanted.items():
        if fp in current:
            continue
        labels = rule_labels(rule, subject)
        grouped = json.dumps(group_labels(labels, rule.group_by), sort_keys=True)
        if grouped not in groups:
            groups[grouped] = _group(rule, labels, now)
        group = groups[grouped]
        touched[group.pk] = group
        created.append(
            Alert(
                rule=rule,
                team_id=rule.team_id,
                group=group,
                fingerprint=fp,
                subject=subject.name[:200],
                cluster_id=subject.cluster_id,
                severity=rule.severity,
                labels=labels,
                annotations={"summary": subject.summary, "description": subject.description},
                starts_at=min(subject.starts_at or now, now),
                silence=silence_for(labels, silences),
            )
        )
    # A racing evaluation may have fired the same incident: the unique index keeps one.
    Alert.objects.bulk_create(created, ignore_conflicts=True)
    gone = [alert for fp, alert in current.items() if fp not in wanted]
    if gone:
        Alert.objects.filter(pk__in=[a.pk for a in gone]).update(
            state=AlertState.RESOLVED, ends_at=now
        )
        for group in AlertGroup.objects.filter(pk__in={a.group_id for a in gone}):
            touched[group.pk] = group
    AlertRule.objects.filter(pk=rule.pk).update(evaluated_at=now)
    return Outcome(len(created), len(gone), groups_mark_due(touched.values(), rule, now))


def rule_evaluate(
    *, rule: AlertRule, now: datetime | None = None, cluster_ids: list[int] | None = None
) -> Outcome:
    """Evaluate one rule now (or at `now`, for tests and replays)."""
    now = now or timezone.now()
    subjects = rule_subjects(rule, now=now, cluster_ids=cluster_ids)
    return rule_reconcile(rule=rule, subjects=subjects, now=now, cluster_ids=cluster_ids)


def _item(alert: Alert) -> AlertItem:
    return AlertItem(
        fingerprint=alert.fingerprint,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        url=f"/alerts/{alert.pk}/",
    )


def _notification(
    rule: AlertRule, group: AlertGroup, firing: list[Alert], resolved: list[Alert]
) -> Notification:
    status = "firing" if firing else "resolved"
    listed = firing or resolved
    where = ", ".join(f"{k}={v}" for k, v in group.labels.items() if v)
    title = f"[{status.upper()}:{len(listed)}] {rule.name}" + (f" ({where})" if where else "")
    names = ", ".join(a.subject for a in listed[:LISTED])
    more = f" and {len(listed) - LISTED} more" if len(listed) > LISTED else ""
    summary = (
        f"{len(firing)} firing: {names}{more}"
        if firing
        else f"{len(resolved)} resolved: {names}{more}"
    )
    if firing and resolved:
        summary += f"; {len(resolved)} resolved"
    return Notification(
        team_id=rule.team_id,
        group_key=group.key,
        status=status,  # type: ignore[arg-type]
        severity=rule.severity,  # type: ignore[arg-type]
        title=title,
        summary=summary,
        alerts=tuple(_item(a) for a in [*firing, *resolved]),
        rule_name=rule.name,
    )


def _resilence(alerts: list[Alert], team_id: int, now: datetime) -> None:
    """Point each firing alert at the silence that mutes it now (or none)."""
    silences = active_silences(team_id, now)
    for alert in alerts:
        if alert.state != AlertState.FIRING:
            continue
        silence = silence_for(alert.labels, silences)
        if (silence.pk if silence else None) != alert.silence_id:
            alert.silence = silence
            Alert.objects.filter(pk=alert.pk).update(silence=silence)


@transaction.atomic
def group_flush(*, group_id: int, now: datetime | None = None) -> Notification | None:
    """Send what a due group has to say; None if it was not due, another worker holds it,
    or it has nothing to send (every alert silenced, acknowledged and told)."""
    now = now or timezone.now()
    group = (
        AlertGroup.objects.select_for_update(skip_locked=True)
        .select_related("rule__team")
        .filter(pk=group_id, next_flush_at__lte=now)
        .first()
    )
    if group is None:
        return None  # not due, or another worker is flushing it
    rule = group.rule
    alerts = list(
        group.alerts.filter(
            Q(state=AlertState.FIRING)
            | Q(notified_at__isnull=False, resolved_notified_at__isnull=True)
        ).order_by("subject", "pk")
    )
    _resilence(alerts, rule.team_id, now)
    plan = plan_flush(
        (
            Member(
                key=a.pk,
                firing=a.state == AlertState.FIRING,
                silenced=a.silence_id is not None,
                acknowledged=a.acknowledged_at is not None,
                notified=a.notified_at is not None,
                resolved_notified=a.resolved_notified_at is not None,
            )
            for a in alerts
        ),
        now=now,
        last_flush_at=group.last_flush_at,
        timing=timing(rule),
    )
    sent = None
    if plan.send:
        by_id = {a.pk: a for a in alerts}
        sent = _notification(
            rule, group, [by_id[k] for k in plan.firing], [by_id[k] for k in plan.resolved]
        )
        notifications.dispatch(sent)  # looked up at call time: tests capture it there
        Alert.objects.filter(pk__in=plan.firing, notified_at__isnull=True).update(notified_at=now)
        Alert.objects.filter(pk__in=plan.resolved).update(resolved_notified_at=now)
        group.last_flush_at = now
    group.next_flush_at = plan.repeat_at
    group.save(update_fields=["last_flush_at", "next_flush_at"])
    return sent


def groups_flush(*, now: datetime | None = None) -> int:
    """Flush every due group; returns how many notifications went out. A group whose
    dispatch fails stays due and is tried again at the next pass."""
    now = now or timezone.now()
    sent = 0
    for group_id in AlertGroup.objects.filter(next_flush_at__lte=now).values_list("pk", flat=True):
        try:
            sent += group_flush(group_id=group_id, now=now) is not None
        except Exception:
            logger.exception("alerts: notifying group %s failed; it stays due", group_id)
    return sent


def silences_changed(*, team_id: int, now: datetime | None = None) -> int:
    """After a silence starts or ends: re-point the team's firing alerts and make the
    groups whose alerts were unmuted due, so what was held back goes out now."""
    now = now or timezone.now()
    alerts = list(Alert.objects.filter(team_id=team_id, state=AlertState.FIRING))
    before = {a.pk: a.silence_id for a in alerts}
    _resilence(alerts, team_id, now)
    unmuted = {a.group_id for a in alerts if before[a.pk] is not None and a.silence_id is None}
    unmuted |= {a.group_id for a in alerts if a.notified_at is None and a.silence_id is None}
    later = Q(next_flush_at__isnull=True) | Q(next_flush_at__gt=now)
    return AlertGroup.objects.filter(later, pk__in=unmuted).update(next_flush_at=now)


def silences_expired(*, now: datetime | None = None) -> int:
    """Teams with alerts muted by a silence that has ended get them back (periodic)."""
    now = now or timezone.now()
    teams = set(
        Alert.objects.filter(state=AlertState.FIRING, silence__ends_at__lte=now).values_list(
            "team_id", flat=True
        )
    )
    return sum(silences_changed(team_id=team_id, now=now) for team_id in teams)


@transaction.atomic
def alert_acknowledge(*, actor: AbstractBaseUser, alert: Alert) -> Alert:
    """Someone is on it: no more repeats of this alert (its resolution is still told).
    The caller checked that `actor` operates the alert's team."""
    locked = Alert.objects.select_for_update().get(pk=alert.pk)
    if locked.state != AlertState.FIRING:
        raise ValidationError("Only a firing alert can be acknowledged; this one resolved.")
    if locked.acknowledged_at is None:
        locked.acknowledged_at = timezone.now()
        locked.acknowledged_by_id = actor.pk
        locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
        audit_record(
            actor=actor,
            action="alert.acknowledge",
            target=locked,
            team=locked.team,
            detail={"rule": locked.rule.name, "subject": locked.subject},
        )
    return locked


def due_by_group(outcomes: Iterable[Outcome]) -> dict[int, datetime]:
    """The earliest time each touched group notifies."""
    due: dict[int, datetime] = defaultdict(lambda: datetime.max.replace(tzinfo=UTC))
    for outcome in outcomes:
        for group_id, when in outcome.due or []:
            due[group_id] = min(due[group_id], when)
    return dict(due)


def seconds_until(when: datetime, now: datetime) -> float:
    return max(0.0, (when - now) / timedelta(seconds=1))
