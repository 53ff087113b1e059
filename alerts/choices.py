"""Alert rule kinds, severities and alert states."""

from __future__ import annotations

from django.db import models


class RuleKind(models.TextChoices):
    CLUSTER_STATUS = "cluster_status", "Cluster Unreachable or Degraded for N minutes"
    AGENT_SILENT = "agent_silent", "Cluster agent silent for N minutes"
    COMPLIANCE = "compliance", "Compliance below a threshold or dropping"
    CRITICAL_VIOLATION = "critical_violation", "New critical policy violation"
    BUDGET_FORECAST = "budget_forecast", "Budget forecast above its amount"
    OPERATION_FAILED = "operation_failed", "Operation or rollout failed or rolled back"
    VERSION_EOL = "version_eol", "Kubernetes version past end of life"
    AGENT_TOKEN = "agent_token_expiring", "Agent token about to expire"


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


# What a list shows: firing alerts split by what a person did about them.
SHOWN_STATES = ("firing", "acknowledged", "silenced", "resolved")
