"""The alert lifecycle against a real database, on a clock moved by hand: one alert per
incident, grouping into one notification, group_wait / group_interval / repeat_interval,
resolution, acknowledgement, silences. Notifications are captured at the boundary
(notifications.services.dispatch); expected contents are worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from accounts.models import Team
from alerts.choices import AlertState
from alerts.models import Alert, AlertGroup, AlertRule
from alerts.services.lifecycle import alert_acknowledge, groups_flush, rule_evaluate
from alerts.services.rules import RuleSpec, alert_rule_create
from alerts.services.silences import silence_create, silence_expire
from notifications.types import Notification
from tests.alerts.conftest import labels_of, later, set_status
from tests.factories import Member, make_cluster

pytestmark = pytest.mark.django_db


def unreachable_rule(team: Team, **spec: Any) -> AlertRule:
    return alert_rule_create(
        actor=None,
        team=team,
        spec=RuleSpec(
            name="cluster-unreachable",
            kind="cluster_status",
            params={"status": "unreachable", "for_minutes": 0},
            severity="critical",
            **spec,
        ),
    )


@pytest.fixture
def fleet(team: Team) -> dict[str, list[Any]]:
    """40 clusters in eu-west-1, 2 in us-east-1, all Ready."""
    eu = [
        make_cluster(team=team, name=f"eu-{i:02d}", region="eu-west-1", status="ready")
        for i in range(40)
    ]
    us = [
        make_cluster(team=team, name=f"us-{i}", region="us-east-1", status="ready")
        for i in range(2)
    ]
    return {"eu": eu, "us": us}


def test_forty_unreachable_in_one_region_make_one_notification(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    # given
    rule = unreachable_rule(team)
    set_status(fleet["eu"] + fleet["us"], "unreachable", t0)
    # when
    outcome = rule_evaluate(rule=rule, now=t0)
    # then: 42 alerts in two groups (by region), nothing sent during group_wait (5 s)
    assert outcome.fired == 42
    assert AlertGroup.objects.filter(rule=rule).count() == 2
    assert groups_flush(now=later(t0, 4)) == 0 and sent == []
    assert groups_flush(now=later(t0, 5)) == 2
    by_region = {n.alerts[0].labels["region"]: n for n in sent}
    eu = by_region["eu-west-1"]
    assert eu.status == "firing" and eu.severity == "critical" and eu.team_id == team.pk
    assert len(eu.alerts) == 40 and labels_of(eu, "cluster") == sorted(c.name for c in fleet["eu"])
    assert eu.title == "[FIRING:40] cluster-unreachable (region=eu-west-1)"
    assert eu.summary.startswith("40 firing: eu-00, eu-01") and eu.summary.endswith("and 30 more")
    assert len(by_region["us-east-1"].alerts) == 2
    assert {item.labels["alertname"] for item in eu.alerts} == {"cluster-unreachable"}


def test_repeated_evaluations_keep_one_alert_per_incident(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    rule = unreachable_rule(team)
    set_status(fleet["eu"][:3], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    groups_flush(now=later(t0, 5))
    fingerprints = set(Alert.objects.values_list("fingerprint", flat=True))
    # when: evaluated again and again, flushed again
    for seconds in (15, 30, 45):
        assert rule_evaluate(rule=rule, now=later(t0, seconds)).fired == 0
        groups_flush(now=later(t0, seconds))
    # then
    assert Alert.objects.count() == 3
    assert set(Alert.objects.values_list("fingerprint", flat=True)) == fingerprints
    assert len(sent) == 1


def test_resolution_and_group_interval(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    rule = unreachable_rule(team)
    eu = fleet["eu"][:3]
    set_status(eu, "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    groups_flush(now=later(t0, 5))
    # one comes back 20 s later: told no sooner than group_interval (60 s) after the last
    set_status(eu[:1], "ready", later(t0, 20))
    assert rule_evaluate(rule=rule, now=later(t0, 20)).resolved == 1
    resolved = Alert.objects.get(cluster=eu[0])
    assert resolved.state == AlertState.RESOLVED and resolved.ends_at == later(t0, 20)
    assert groups_flush(now=later(t0, 64)) == 0
    assert groups_flush(now=later(t0, 65)) == 1
    update = sent[-1]
    assert update.status == "firing"  # two still fire
    assert [(i.labels["cluster"], i.ends_at) for i in update.alerts] == [
        ("eu-01", None),
        ("eu-02", None),
        ("eu-00", later(t0, 20)),
    ]
    # the others come back: a resolved notification, on the same group key
    set_status(eu[1:], "ready", later(t0, 200))
    rule_evaluate(rule=rule, now=later(t0, 200))
    groups_flush(now=later(t0, 200))
    final = sent[-1]
    assert final.status == "resolved" and final.group_key == sent[0].group_key
    assert labels_of(final, "cluster") == ["eu-01", "eu-02"]
    assert final.title == "[RESOLVED:2] cluster-unreachable (region=eu-west-1)"
    # nothing more to say, ever
    assert groups_flush(now=later(t0, 100_000)) == 0


def test_the_same_trouble_later_is_a_new_incident_with_the_same_fingerprint(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    rule = unreachable_rule(team)
    cluster = fleet["us"][0]
    set_status([cluster], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    set_status([cluster], "ready", later(t0, 60))
    rule_evaluate(rule=rule, now=later(t0, 60))
    set_status([cluster], "unreachable", later(t0, 120))
    rule_evaluate(rule=rule, now=later(t0, 120))
    incidents = list(Alert.objects.filter(cluster=cluster).order_by("starts_at"))
    assert [a.state for a in incidents] == ["resolved", "firing"]
    assert incidents[0].fingerprint == incidents[1].fingerprint
    assert incidents[1].starts_at == later(t0, 120)


def test_fired_and_cleared_within_the_wait_says_nothing(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    rule = unreachable_rule(team, group_wait=30)
    set_status(fleet["us"], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    set_status(fleet["us"], "ready", later(t0, 10))
    rule_evaluate(rule=rule, now=later(t0, 10))
    assert groups_flush(now=later(t0, 30)) == 0 and sent == []


def test_repeat_interval_and_acknowledgement(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], owner: Member, t0: datetime
) -> None:
    rule = unreachable_rule(team, repeat_interval=3600)
    set_status(fleet["us"], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    groups_flush(now=later(t0, 5))
    assert groups_flush(now=later(t0, 3000)) == 0
    assert groups_flush(now=later(t0, 3605)) == 1  # the repeat
    assert len(sent[-1].alerts) == 2 and sent[-1].status == "firing"
    # when: both acknowledged, no more repeats
    for alert in Alert.objects.filter(state="firing"):
        alert_acknowledge(actor=owner.user, alert=alert)
    assert groups_flush(now=later(t0, 3605 + 7200)) == 0
    assert len(sent) == 2
    # but the resolution is still told
    set_status(fleet["us"], "ready", later(t0, 9000))
    rule_evaluate(rule=rule, now=later(t0, 9000))
    groups_flush(now=later(t0, 9000))
    assert sent[-1].status == "resolved" and len(sent) == 3


def test_for_minutes_waits_before_firing(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    rule = alert_rule_create(
        actor=None,
        team=team,
        spec=RuleSpec(
            name="degraded", kind="cluster_status", params={"status": "degraded", "for_minutes": 15}
        ),
    )
    set_status(fleet["us"][:1], "degraded", t0 - timedelta(minutes=10))
    assert rule_evaluate(rule=rule, now=t0).fired == 0
    assert rule_evaluate(rule=rule, now=t0 + timedelta(minutes=5)).fired == 1
    alert = Alert.objects.get()
    assert alert.starts_at == t0 - timedelta(minutes=10)  # when the trouble began
    assert alert.severity == "warning"


def test_scope_by_selector_and_cluster_set(
    team: Team, sent: list[Notification], t0: datetime
) -> None:
    from clusters.models import ClusterSet

    prod = make_cluster(team=team, name="prod-1", labels={"env": "prod"}, status="unreachable")
    make_cluster(team=team, name="dev-1", labels={"env": "dev"}, status="unreachable")
    picked = make_cluster(team=team, name="picked", status="unreachable")
    by_label = unreachable_rule(team, selector="env=prod")
    cluster_set = ClusterSet.objects.create(name="picked-set", team=team)
    cluster_set.members.add(picked)
    in_set = alert_rule_create(
        actor=None,
        team=team,
        spec=RuleSpec(name="in-set", kind="cluster_status", cluster_set="picked-set"),
    )
    rule_evaluate(rule=by_label, now=t0)
    rule_evaluate(rule=in_set, now=t0)
    assert list(Alert.objects.filter(rule=by_label).values_list("cluster", flat=True)) == [prod.pk]
    assert list(Alert.objects.filter(rule=in_set).values_list("cluster", flat=True)) == [picked.pk]
    # the cluster's own labels are alert labels (silences can match them)
    assert Alert.objects.get(rule=by_label).labels["env"] == "prod"


def test_an_event_about_some_clusters_leaves_the_others_alone(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], t0: datetime
) -> None:
    rule = unreachable_rule(team)
    a, b = fleet["us"]
    set_status([a, b], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    set_status([a], "ready", later(t0, 30))
    # when: the event names only `a`
    outcome = rule_evaluate(rule=rule, now=later(t0, 30), cluster_ids=[a.pk])
    assert (outcome.fired, outcome.resolved) == (0, 1)
    assert Alert.objects.get(cluster=b).state == "firing"


def test_a_silence_mutes_matching_alerts_until_it_is_expired(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], owner: Member, t0: datetime
) -> None:
    rule = unreachable_rule(team)
    silence = silence_create(
        actor=owner.user,
        team=team,
        matchers=['region="eu-west-1"', "severity=~crit.*"],
        comment="eu-west-1 maintenance, CHG-1234",
        ends_at=t0 + timedelta(hours=2),
        starts_at=t0 - timedelta(minutes=1),
    )
    set_status(fleet["eu"][:2] + fleet["us"][:1], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    groups_flush(now=later(t0, 5))
    # only us-east-1 is told; eu-west-1's alerts are there, silenced
    assert [n.alerts[0].labels["region"] for n in sent] == ["us-east-1"]
    shown = {a.subject: a.shown_state for a in Alert.objects.all()}
    assert shown == {"eu-00": "silenced", "eu-01": "silenced", "us-0": "firing"}
    # when: the silence is expired early, what it held back goes out
    silence_expire(actor=owner.user, silence=silence)
    groups_flush()
    assert len(sent) == 2 and labels_of(sent[-1], "cluster") == ["eu-00", "eu-01"]
    assert not Alert.objects.filter(silence__isnull=False).exists()


def test_a_silence_that_reaches_its_end_unmutes(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], owner: Member
) -> None:
    from django.utils import timezone

    from alerts.services.lifecycle import silences_expired

    now = timezone.now()
    silence_create(
        actor=owner.user,
        team=team,
        matchers=["cluster=us-0"],
        comment="rebooting",
        ends_at=now + timedelta(minutes=30),
    )
    rule = unreachable_rule(team)
    set_status(fleet["us"][:1], "unreachable", now)
    rule_evaluate(rule=rule, now=now)
    groups_flush(now=now + timedelta(seconds=10))
    assert sent == []
    # when: half an hour later the periodic pass sees the silence has ended
    end = now + timedelta(minutes=31)
    assert silences_expired(now=end) == 1  # its group, idle since the muted flush, is due again
    groups_flush(now=end)
    assert len(sent) == 1 and labels_of(sent[0], "cluster") == ["us-0"]


def test_a_failed_dispatch_leaves_the_group_due(
    team: Team, fleet: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch, t0: datetime
) -> None:
    def broken(notification: Notification) -> int:
        raise RuntimeError("channels down")

    monkeypatch.setattr("notifications.services.dispatch", broken)
    rule = unreachable_rule(team)
    set_status(fleet["us"][:1], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    assert groups_flush(now=later(t0, 5)) == 0
    assert Alert.objects.get().notified_at is None
    assert AlertGroup.objects.get().next_flush_at == later(t0, 5)


def test_disabling_a_rule_resolves_its_alerts_and_says_so(
    team: Team, fleet: dict[str, list[Any]], sent: list[Notification], owner: Member, t0: datetime
) -> None:
    from django.utils import timezone

    from alerts.services.rules import alert_rule_update

    rule = unreachable_rule(team)
    set_status(fleet["us"], "unreachable", t0)
    rule_evaluate(rule=rule, now=t0)
    groups_flush(now=later(t0, 5))
    alert_rule_update(actor=owner.user, rule=rule, spec=RuleSpec(enabled=False))
    assert not Alert.objects.filter(state="firing").exists()
    groups_flush(now=timezone.now() + timedelta(minutes=2))
    assert [n.status for n in sent] == ["firing", "resolved"]
