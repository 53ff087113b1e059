"""Alert pages by role: everyone of the team sees alerts, rules and silences; operators
acknowledge and silence; admins create, disable and delete rules; the cluster page's card
and the overview's panel show the team's alerts only."""

from __future__ import annotations

import pytest

from accounts.models import Team
from alerts.models import Alert, AlertRule, Silence
from alerts.services.lifecycle import rule_evaluate
from alerts.services.rules import RuleSpec, alert_rule_create
from tests.factories import Member, make_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def firing(team: Team) -> Alert:
    rule = alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name="down", kind="cluster_status")
    )
    make_cluster(team=team, name="dead", status="unreachable", region="eu-west-1")
    rule_evaluate(rule=rule)
    return Alert.objects.get()


def test_alerts_page_lists_and_operator_acknowledges(
    viewer: Member, operator: Member, firing: Alert
) -> None:
    page = viewer.page.get("/alerts/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "dead is unreachable" in html and 'data-field="count-firing">1<' in html
    assert "Acknowledge dead" not in html  # a viewer has no button
    assert viewer.page.post(f"/alerts/{firing.pk}/acknowledge/").status_code == 403
    assert "Acknowledge dead" in operator.page.get("/alerts/").content.decode()
    response = operator.page.post(f"/alerts/{firing.pk}/acknowledge/", {"next": "/alerts/"})
    assert response.status_code == 302
    firing.refresh_from_db()
    assert firing.shown_state == "acknowledged"
    detail = viewer.page.get(f"/alerts/{firing.pk}/").content.decode()
    assert "acknowledged" in detail and firing.fingerprint in detail


def test_outsider_sees_no_alert(outsider: Member, firing: Alert) -> None:
    assert "dead is unreachable" not in outsider.page.get("/alerts/").content.decode()
    assert outsider.page.get(f"/alerts/{firing.pk}/").status_code == 404
    assert outsider.page.get("/alerts/panel/").content.decode().count("dead") == 0
    assert outsider.page.get("/alerts/cluster/dead/").status_code == 404


def test_rules_page_admin_creates_disables_deletes(owner: Member, operator: Member) -> None:
    body = {
        "team": "payments",
        "name": "eol-soon",
        "kind": "version_eol",
        "params": '{"days_before": 30}',
        "severity": "info",
    }
    assert operator.page.post("/alerts/rules/new/", body).status_code == 403
    assert owner.page.post("/alerts/rules/new/", body).status_code == 302
    rule = AlertRule.objects.get(name="eol-soon")
    assert rule.params == {"days_before": 30} and rule.severity == "info"
    assert "eol-soon" in operator.page.get("/alerts/rules/").content.decode()
    owner.page.post(f"/alerts/rules/{rule.pk}/toggle/")
    rule.refresh_from_db()
    assert not rule.enabled
    # bad params: a message, nothing created
    page = owner.page.post(
        "/alerts/rules/new/", {**body, "name": "bad", "params": '{"days": 1}'}, follow=True
    )
    assert "not a parameter of version_eol" in page.content.decode()
    assert not AlertRule.objects.filter(name="bad").exists()
    owner.page.post(f"/alerts/rules/{rule.pk}/delete/")
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


def test_silences_page_operator_silences_and_expires(
    operator: Member, viewer: Member, firing: Alert
) -> None:
    body = {"team": "payments", "matchers": 'cluster="dead"\n', "hours": "2", "comment": "ticket 9"}
    assert viewer.page.post("/alerts/silences/new/", body).status_code == 403
    assert operator.page.post("/alerts/silences/new/", body).status_code == 302
    silence = Silence.objects.get()
    firing.refresh_from_db()
    assert firing.silence_id == silence.pk
    assert "cluster=&quot;dead&quot;" in viewer.page.get("/alerts/silences/").content.decode()
    operator.page.post(f"/alerts/silences/{silence.pk}/expire/")
    firing.refresh_from_db()
    assert firing.silence_id is None
    page = operator.page.post(
        "/alerts/silences/new/", {**body, "matchers": "cluster"}, follow=True
    ).content.decode()
    assert "is not a matcher" in page


def test_cluster_card_and_overview_panel(viewer: Member, firing: Alert) -> None:
    card = viewer.page.get("/alerts/cluster/dead/").content.decode()
    assert "down" in card and "firing" in card
    panel = viewer.page.get("/alerts/panel/").content.decode()
    assert 'data-field="alerts-firing">1<' in panel and "dead is unreachable" in panel
    assert 'hx-get="/alerts/cluster/dead/"' in viewer.page.get("/clusters/dead/").content.decode()


def test_cluster_page_shows_the_end_of_life_of_its_version(viewer: Member, team: Team) -> None:
    make_cluster(team=team, name="old", provider="aws", kubernetes_version="v1.20.7-eks-1")
    html = viewer.page.get("/clusters/old/").content.decode()
    assert "past end of life (2022-11-01)" in html  # EKS 1.20, from the shipped table


def test_admin_edits_a_rule(owner: Member, operator: Member, team: Team) -> None:
    rule = alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name="down", kind="cluster_status")
    )
    assert operator.page.get(f"/alerts/rules/{rule.pk}/edit/").status_code == 403
    form = owner.page.get(f"/alerts/rules/{rule.pk}/edit/").content.decode()
    assert "Group wait (s)" in form
    body = {
        "params": '{"status": "degraded", "for_minutes": 10}',
        "severity": "critical",
        "selector": "env=prod",
        "group_by": "region, environment",
        "group_wait": "30",
        "group_interval": "120",
        "repeat_interval": "7200",
        "description": "prod only",
    }
    assert owner.page.post(f"/alerts/rules/{rule.pk}/edit/", body).status_code == 302
    rule.refresh_from_db()
    assert rule.params == {"status": "degraded", "for_minutes": 10}
    assert (rule.severity, rule.selector, rule.group_by) == (
        "critical",
        "env=prod",
        ["environment", "region"],
    )
    assert (rule.group_wait, rule.group_interval, rule.repeat_interval) == (30, 120, 7200)
    page = owner.page.post(
        f"/alerts/rules/{rule.pk}/edit/", {**body, "group_wait": "-5"}, follow=True
    ).content.decode()
    assert "Seconds from 0" in page
    rule.refresh_from_db()
    assert rule.group_wait == 30
