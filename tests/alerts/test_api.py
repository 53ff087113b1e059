"""The alerts API by role: viewers read, operators acknowledge and silence, admins change
rules; another team's objects are 404; bad input is a clear 400 and changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Team
from alerts.models import Alert, AlertRule, Silence
from alerts.services.lifecycle import rule_evaluate
from alerts.services.rules import RuleSpec, alert_rule_create
from audit.models import AuditEvent
from tests.factories import Member, make_cluster

pytestmark = pytest.mark.django_db
API = "/api/v1/"


@pytest.fixture
def firing(team: Team) -> Alert:
    rule = alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name="down", kind="cluster_status")
    )
    make_cluster(team=team, name="dead", status="unreachable", region="eu-west-1")
    rule_evaluate(rule=rule)
    return Alert.objects.get()


def rule_body(**extra: object) -> dict[str, object]:
    return {
        "team": "payments",
        "name": "slow-degraded",
        "kind": "cluster_status",
        "params": {"status": "degraded", "for_minutes": 30},
        "severity": "warning",
        "selector": "env=prod",
        **extra,
    }


def test_admin_creates_changes_and_deletes_a_rule(owner: Member) -> None:
    created = owner.api.post(API + "alert-rules/", rule_body(), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["params"] == {"status": "degraded", "for_minutes": 30}
    assert body["group_by"] == ["region"] and body["team"] == "payments"
    url = f"{API}alert-rules/{body['id']}/"
    changed = owner.api.patch(url, {"params": {"for_minutes": 5}, "enabled": False}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["params"] == {"status": "unreachable", "for_minutes": 5}
    assert changed.json()["enabled"] is False
    assert owner.api.delete(url).status_code == 204
    assert not AlertRule.objects.exists()
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-3:] == ["alert_rule.create", "alert_rule.update", "alert_rule.delete"]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        (rule_body(params={"status": "ready"}), "params", "status: must be one of"),
        (rule_body(params={"minutes": 3}), "params", "minutes: not a parameter"),
        (rule_body(kind="nonsense"), "kind", ""),
        (rule_body(selector="env in (a"), "selector", "Invalid label selector"),
        (rule_body(cluster_set="nope"), "cluster_set", "No such cluster set"),
        (rule_body(group_wait=-1), "group_wait", "Seconds from 0"),
        (rule_body(name="Bad Name"), "name", "Lowercase"),
    ],
)
def test_bad_rules_are_400_and_change_nothing(
    owner: Member, body: dict[str, object], field: str, text: str
) -> None:
    response = owner.api.post(API + "alert-rules/", body, format="json")
    assert response.status_code == 400, response.content
    assert text in str(response.json()), response.json()
    assert field in str(response.json())
    assert not AlertRule.objects.exists()


def test_only_admins_change_rules(viewer: Member, operator: Member) -> None:
    for member in (viewer, operator):
        assert member.api.get(API + "alert-rules/").status_code == 200
        response = member.api.post(API + "alert-rules/", rule_body(), format="json")
        assert response.status_code == 403
    assert not AlertRule.objects.exists()


def test_viewers_read_alerts_and_their_state(viewer: Member, firing: Alert) -> None:
    listed = viewer.api.get(API + "alerts/", {"state": "firing"})
    assert listed.status_code == 200
    rows = listed.json()["results"]
    assert [(r["subject"], r["state"], r["cluster"], r["rule"]) for r in rows] == [
        ("dead", "firing", "dead", "down")
    ]
    assert viewer.api.get(API + "alerts/", {"state": "resolved"}).json()["results"] == []
    assert viewer.api.get(API + "alerts/", {"cluster": "dead"}).json()["count"] == 1
    assert viewer.api.post(f"{API}alerts/{firing.pk}/acknowledge/").status_code == 403


def test_operator_acknowledges(operator: Member, firing: Alert) -> None:
    response = operator.api.post(f"{API}alerts/{firing.pk}/acknowledge/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "acknowledged"
    assert response.json()["acknowledged_by"] == operator.user.username
    assert AuditEvent.objects.filter(action="alert.acknowledge").count() == 1


def test_acknowledging_a_resolved_alert_is_a_400(operator: Member, firing: Alert) -> None:
    Alert.objects.update(state="resolved", ends_at=timezone.now())
    response = operator.api.post(f"{API}alerts/{firing.pk}/acknowledge/")
    assert response.status_code == 400 and "resolved" in str(response.json())


def test_outsiders_see_nothing(outsider: Member, firing: Alert) -> None:
    assert outsider.api.get(API + "alerts/").json()["results"] == []
    assert outsider.api.get(f"{API}alerts/{firing.pk}/").status_code == 404
    assert outsider.api.post(f"{API}alerts/{firing.pk}/acknowledge/").status_code == 404
    assert outsider.api.get(f"{API}alert-rules/{firing.rule_id}/").status_code == 404
    response = outsider.api.post(API + "alert-rules/", rule_body(), format="json")
    assert response.status_code == 403


def silence_body(ends_at: datetime, **extra: object) -> dict[str, object]:
    return {
        "team": "payments",
        "matchers": ['region="eu-west-1"'],
        "comment": "planned maintenance",
        "ends_at": ends_at.isoformat(),
        **extra,
    }


def test_operator_silences_and_expires(operator: Member, viewer: Member, firing: Alert) -> None:
    ends = timezone.now() + timedelta(hours=2)
    assert viewer.api.post(API + "silences/", silence_body(ends), format="json").status_code == 403
    created = operator.api.post(API + "silences/", silence_body(ends), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["matchers"] == ['region="eu-west-1"']
    # the firing alert is silenced at once
    assert viewer.api.get(f"{API}alerts/{firing.pk}/").json()["state"] == "silenced"
    assert viewer.api.get(API + "silences/", {"active": "true"}).json()["count"] == 1
    silence_id = created.json()["id"]
    assert viewer.api.post(f"{API}silences/{silence_id}/expire/").status_code == 403
    expired = operator.api.post(f"{API}silences/{silence_id}/expire/")
    assert expired.status_code == 200
    assert viewer.api.get(f"{API}alerts/{firing.pk}/").json()["state"] == "firing"
    again = operator.api.post(f"{API}silences/{silence_id}/expire/")
    assert again.status_code == 400 and "already ended" in str(again.json())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"matchers": ["region"]}, "matchers"),
        ({"matchers": ["zone=~.*"]}, "matchers"),
        ({"comment": "  "}, "comment"),
        ({"ends_at": "2001-01-01T00:00:00Z"}, "ends_at"),
    ],
)
def test_bad_silences_are_400(operator: Member, change: dict[str, object], field: str) -> None:
    body = {**silence_body(timezone.now() + timedelta(hours=1)), **change}
    response = operator.api.post(API + "silences/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.content
    assert not Silence.objects.exists()
