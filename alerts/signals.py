"""Alerts' answers to what lower layers announce (connected in AlertsConfig.ready)."""

from __future__ import annotations

from typing import Any

from accounts.models import Team
from alerts.services.rules import alert_rules_default


def give_default_rules(sender: Any, team: Team, **kwargs: Any) -> None:
    """Every team starts with the default rules (alerts/params.py DEFAULT_RULES)."""
    alert_rules_default(team=team)
