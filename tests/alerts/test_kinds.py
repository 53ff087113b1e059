"""Each rule kind finds what it should (and only that), default rules, the periodic pass
and the end-of-life table's command."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Team
from accounts.services import team_create
from alerts.models import Alert, AlertRule
from alerts.params import DEFAULT_RULES
from alerts.services.lifecycle import rule_evaluate
from alerts.services.passes import alerts_periodic
from alerts.services.rules import RuleSpec, alert_rule_create
from clusters.eol import eol_for
from costs.models import Budget, CostAllocation
from notifications.types import Notification
from operations.choices import OperationState
from operations.services import operation_create, operation_finish
from policies.services.policies import PolicySpec, policy_create
from tests.factories import make_cluster, make_evaluation

pytestmark = pytest.mark.django_db

RULE = {
    "name": "no-host-network",
    "kind": "object",
    "match": {"kinds": ["Pod"]},
    "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    "message": "hostNetwork is not allowed",
}


def rule(team: Team, rule_name: str, kind: str, **params: Any) -> AlertRule:
    return alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name=rule_name, kind=kind, params=params)
    )


def subjects(rule: AlertRule) -> list[str]:
    return sorted(Alert.objects.filter(rule=rule, state="firing").values_list("subject", flat=True))


def test_a_new_team_gets_the_default_rules(db: None) -> None:
    team = team_create(name="fresh", actor=None)
    names = set(AlertRule.objects.filter(team=team).values_list("name", flat=True))
    assert names == {name for name, *_ in DEFAULT_RULES}
    unreachable = AlertRule.objects.get(team=team, name="cluster-unreachable")
    assert unreachable.params == {"status": "unreachable", "for_minutes": 0}
    assert unreachable.group_by == ["region"] and unreachable.severity == "critical"


def test_agent_silent(team: Team, t0: datetime) -> None:
    silent = rule(team, "silent", "agent_silent", for_minutes=10)
    make_cluster(team=team, name="edge-quiet", mode="pull", last_seen_at=t0 - timedelta(minutes=11))
    make_cluster(team=team, name="edge-talks", mode="pull", last_seen_at=t0 - timedelta(minutes=2))
    make_cluster(team=team, name="push-one", mode="push", last_seen_at=t0 - timedelta(hours=1))
    rule_evaluate(rule=silent, now=t0)
    assert subjects(silent) == ["edge-quiet"]


def test_agent_token_about_to_expire(team: Team, t0: datetime) -> None:
    from clusters.models import AgentToken

    expiring = rule(team, "token", "agent_token_expiring", days_before=7)

    def token(cluster: Any, name: str, expires_in: timedelta | None, **fields: Any) -> None:
        AgentToken.objects.create(
            cluster=cluster,
            kind="agent",
            token_hash=f"hash-{name}",
            prefix=name[:16],
            expires_at=None if expires_in is None else t0 + expires_in,
            **fields,
        )

    # by hand, a week from t0: stuck expires in 3 days; rotated had an old token expiring
    # in 2 days but a new one for 29 days; revoked's only live token lasts 20 days; legacy
    # has a token without expiry; gone's token expired yesterday
    stuck = make_cluster(team=team, name="edge-stuck", mode="pull")
    token(stuck, "stuck", timedelta(days=3))
    rotated = make_cluster(team=team, name="edge-rotated", mode="pull")
    token(rotated, "rotated-old", timedelta(days=2))
    token(rotated, "rotated-new", timedelta(days=29))
    revoked = make_cluster(team=team, name="edge-revoked", mode="pull")
    token(revoked, "revoked-old", timedelta(days=1), revoked_at=t0)
    token(revoked, "revoked-new", timedelta(days=20))
    legacy = make_cluster(team=team, name="edge-legacy", mode="pull")
    token(legacy, "legacy", None)
    gone = make_cluster(team=team, name="edge-gone", mode="pull")
    token(gone, "gone", timedelta(days=-1))
    rule_evaluate(rule=expiring, now=t0)
    assert subjects(expiring) == ["edge-gone", "edge-stuck"]
    summaries = sorted(a.annotations["summary"] for a in Alert.objects.filter(rule=expiring))
    assert "edge-gone expired on" in summaries[0] and "edge-stuck expires on" in summaries[1]
    # when the stuck agent rotates at last, its alert resolves
    token(stuck, "stuck-new", timedelta(days=30))
    rule_evaluate(rule=expiring, now=t0 + timedelta(minutes=11))
    assert subjects(expiring) == ["edge-gone"]


def test_version_past_end_of_life_by_provider(team: Team, t0: datetime) -> None:
    eol = rule(team, "eol", "version_eol")
    make_cluster(team=team, name="old-eks", provider="aws", kubernetes_version="v1.20.2-eks-1")
    make_cluster(team=team, name="unknown-version", provider="aws", kubernetes_version="v9.99.0")
    make_cluster(team=team, name="no-version", provider="aws")
    rule_evaluate(rule=eol, now=t0)
    assert subjects(eol) == ["old-eks"]
    alert = Alert.objects.get(rule=eol)
    assert alert.annotations["summary"] == (
        "old-eks runs Kubernetes v1.20.2-eks-1, which reached its end of life on 2022-11-01"
    )
    assert alert.labels["version"] == "v1.20.2-eks-1"


def test_keelson_update_eol_replaces_the_table(tmp_path: Path) -> None:
    table = {"providers": {"upstream": {"1.20": "2030-01-01"}, "eks": {"1.21": "2031-01-01"}}}
    path = tmp_path / "eol.json"
    path.write_text(json.dumps(table))
    call_command("keelson_update_eol", str(path))
    assert eol_for("aws", "v1.20.2") == date(2030, 1, 1)  # EKS has no 1.20: upstream's
    assert eol_for("aws", "1.21.0") == date(2031, 1, 1)
    assert eol_for("gcp", "1.21.0") is None
    # a bad table is refused and changes nothing
    path.write_text(json.dumps({"providers": {"upstream": {"1.20": "2030-13-01"}}}))
    with pytest.raises(CommandError, match="not a date"):
        call_command("keelson_update_eol", str(path))
    assert eol_for("local", "v1.20.2") == date(2030, 1, 1)


def test_operation_failed_or_rolled_back(team: Team) -> None:
    ops = rule(team, "ops", "operation_failed", window_hours=24)
    failed = operation_create(kind="cluster.provision", created_by=None, team=team)
    operation_finish(operation_id=failed.pk, state=OperationState.FAILED, error="quota exceeded")
    rolled = operation_create(kind="rollout", created_by=None, team=team)
    operation_finish(
        operation_id=rolled.pk,
        state=OperationState.SUCCEEDED,
        result={"rolled_back": ["c1"], "rollback_failed": []},
    )
    fine = operation_create(kind="rollout", created_by=None, team=team)
    operation_finish(
        operation_id=fine.pk, state=OperationState.SUCCEEDED, result={"rolled_back": []}
    )
    rule_evaluate(rule=ops)
    summaries = sorted(
        Alert.objects.filter(rule=ops).values_list("annotations__summary", flat=True)
    )
    assert summaries == ["cluster.provision of Keelson failed", "rollout of Keelson rolled back"]
    # a day later they have aged out: resolved
    from django.utils import timezone

    rule_evaluate(rule=ops, now=timezone.now() + timedelta(hours=25))
    assert not Alert.objects.filter(rule=ops, state="firing").exists()


def test_critical_violation(team: Team, t0: datetime) -> None:
    critical = policy_create(
        team=team,
        spec=PolicySpec(name="crit", severity="critical", cluster_selector="", rules=[RULE]),
        actor=None,
    )
    medium = policy_create(
        team=team, spec=PolicySpec(name="meh", severity="medium", rules=[RULE]), actor=None
    )
    bad, good = make_cluster(team=team, name="bad"), make_cluster(team=team, name="good")
    make_evaluation(policy=critical, cluster=bad, status="compliant", at=t0 - timedelta(hours=1))
    make_evaluation(policy=critical, cluster=bad, status="noncompliant", at=t0)
    make_evaluation(policy=critical, cluster=good, status="compliant", at=t0)
    make_evaluation(policy=medium, cluster=good, status="noncompliant", at=t0)
    violation = rule(team, "violation", "critical_violation")
    rule_evaluate(rule=violation, now=t0)
    assert subjects(violation) == ["crit on bad"]
    assert Alert.objects.get(rule=violation).labels["policy"] == "crit"


def test_compliance_below_a_threshold(team: Team, t0: datetime) -> None:
    policy = policy_create(team=team, spec=PolicySpec(name="p", rules=[RULE]), actor=None)
    clusters = [make_cluster(team=team, name=f"c{i}") for i in range(4)]
    for i, cluster in enumerate(clusters):
        make_evaluation(
            policy=policy, cluster=cluster, status="noncompliant" if i else "compliant", at=t0
        )
    below = rule(team, "below", "compliance", target="policy", name="p", below=50)
    rule_evaluate(rule=below, now=t0)
    alert = Alert.objects.get(rule=below)
    assert alert.annotations["summary"] == "Compliance of policy p: compliance is 25%, below 50%"


def test_budget_forecast_above_its_amount(team: Team) -> None:
    from django.utils import timezone

    cluster = make_cluster(team=team, name="spender")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    CostAllocation.objects.create(
        cluster=cluster,
        cluster_name=cluster.name,
        hour=hour,
        namespace="web",
        team=team,
        team_name=team.name,
        provider="other",
        cpu_cost=Decimal(50),
        ram_cost=Decimal(50),
        gpu_cost=Decimal(0),
        total_cost=Decimal(100),
    )
    Budget.objects.create(name="small", team=team, monthly_amount=Decimal(10))
    Budget.objects.create(name="huge", team=team, monthly_amount=Decimal(10**9))
    budgets = rule(team, "budgets", "budget_forecast")
    rule_evaluate(rule=budgets)
    assert subjects(budgets) == ["small"]


def test_the_periodic_pass_evaluates_due_rules_and_notifies(
    team: Team, sent: list[Notification], t0: datetime
) -> None:
    rule(team, "down", "cluster_status")
    make_cluster(team=team, name="dead", status="unreachable", status_changed_at=t0)
    first = alerts_periodic(now=t0)
    assert (first["rules"], first["fired"], first["notifications"]) == (1, 1, 0)
    # 10 s later: not due again (30 s period), and the group's 5 s wait is over
    second = alerts_periodic(now=t0 + timedelta(seconds=10))
    assert (second["rules"], second["notifications"]) == (0, 1)
    assert len(sent) == 1 and sent[0].alerts[0].labels["cluster"] == "dead"
    third = alerts_periodic(now=t0 + timedelta(seconds=40))
    assert (third["rules"], third["fired"], third["notifications"]) == (1, 0, 0)


def test_the_data_migration_gives_existing_teams_the_defaults(team: Team) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("alerts.migrations.0002_alerts_default_rules")
    alert_rule_create(
        actor=None, team=team, spec=RuleSpec(name="cluster-unreachable", kind="version_eol")
    )
    migration.add_defaults(apps, None)
    migration.add_defaults(apps, None)  # again: nothing twice
    names = sorted(AlertRule.objects.filter(team=team).values_list("name", flat=True))
    assert names == sorted(name for name, *_ in DEFAULT_RULES)
    # the team's own rule of that name is kept as it was
    assert AlertRule.objects.get(team=team, name="cluster-unreachable").kind == "version_eol"
