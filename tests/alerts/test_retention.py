"""Alert history is kept KEELSON_ALERTS_RETENTION_DAYS after it ended, then purged; what
is still firing or in force is kept whatever its age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Team
from alerts.models import Alert, AlertGroup, AlertRule, Silence
from alerts.services.retention import alerts_purge
from alerts.services.rules import RuleSpec, alert_rule_create

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _alert(rule: AlertRule, name: str, *, started_days: int, ended_days: int | None) -> Alert:
    group = AlertGroup.objects.create(
        rule=rule, key=f"g-{name}", labels={}, first_at=NOW - timedelta(days=started_days)
    )
    return Alert.objects.create(
        rule=rule,
        team=rule.team,
        group=group,
        fingerprint=name,
        subject=name,
        severity="warning",
        state="firing" if ended_days is None else "resolved",
        starts_at=NOW - timedelta(days=started_days),
        ends_at=None if ended_days is None else NOW - timedelta(days=ended_days),
    )


def _silence(team: Team, *, ended_days: int) -> Silence:
    return Silence.objects.create(
        team=team,
        matchers=['cluster="a"'],
        comment="maintenance",
        starts_at=NOW - timedelta(days=ended_days + 1),
        ends_at=NOW - timedelta(days=ended_days),
    )


def test_history_older_than_the_retention_is_purged_and_the_rest_kept(
    team: Team, settings: object
) -> None:
    settings.KEELSON_ALERTS_RETENTION_DAYS = 180  # type: ignore[attr-defined]
    rule = alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name="down", kind="cluster_status")
    )
    old = _alert(rule, "old", started_days=400, ended_days=181)
    recent = _alert(rule, "recent", started_days=400, ended_days=179)
    firing = _alert(rule, "firing", started_days=400, ended_days=None)
    gone = _silence(team, ended_days=200)
    kept = _silence(team, ended_days=10)
    in_force = Silence.objects.create(
        team=team,
        matchers=['cluster="b"'],
        comment="long",
        starts_at=NOW - timedelta(days=400),
        ends_at=NOW + timedelta(days=1),
    )

    counts = alerts_purge(now=NOW)

    # by hand: one alert ended 181 days ago (> 180), one silence ended 200 days ago, and
    # the old alert's group, left empty and with nothing to send
    assert counts == {"alerts": 1, "silences": 1, "groups": 1}
    assert set(Alert.objects.values_list("pk", flat=True)) == {recent.pk, firing.pk}
    assert set(Silence.objects.values_list("pk", flat=True)) == {kept.pk, in_force.pk}
    assert not AlertGroup.objects.filter(pk=old.group_id).exists()
    assert not Silence.objects.filter(pk=gone.pk).exists()
    # a second pass finds nothing more
    assert alerts_purge(now=NOW) == {"alerts": 0, "silences": 0, "groups": 0}


def test_a_group_with_a_notification_pending_is_kept(team: Team) -> None:
    rule = alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name="down", kind="cluster_status")
    )
    pending = AlertGroup.objects.create(
        rule=rule,
        key="pending",
        labels={},
        first_at=NOW - timedelta(days=400),
        next_flush_at=NOW,
    )
    alerts_purge(now=NOW)
    assert AlertGroup.objects.filter(pk=pending.pk).exists()
