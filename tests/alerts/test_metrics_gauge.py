"""`/metrics` counts firing alerts by team and severity."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Team
from alerts.models import Alert
from alerts.services.lifecycle import rule_evaluate
from alerts.services.rules import RuleSpec, alert_rule_create
from tests.factories import make_cluster
from tests.metrics.test_metrics import TOKEN, named, scrape

pytestmark = pytest.mark.django_db


def test_alerts_firing_gauge(client: Client, settings: Any, team: Team) -> None:
    settings.KEELSON_METRICS_TOKEN = TOKEN
    settings.KEELSON_METRICS_ALLOWED_NETWORKS = []
    critical = alert_rule_create(
        actor=None,
        team=team,
        spec=RuleSpec(name="down", kind="cluster_status", severity="critical"),
    )
    for name in ("a", "b", "c"):
        make_cluster(team=team, name=name, status="unreachable")
    rule_evaluate(rule=critical)
    # a resolved alert no longer counts
    Alert.objects.filter(subject="c").update(state="resolved", ends_at=timezone.now())
    firing = named(scrape(client), "keelson_alerts_firing")
    assert firing == {(("severity", "critical"), ("team", "payments")): 2.0}
