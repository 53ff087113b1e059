"""The shape of one notification: what the alerts engine hands to the channels.

One `Notification` is one message to a team's channels: a group of alerts that fired (or
resolved) together, e.g. 40 clusters unreachable in one region."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Status = Literal["firing", "resolved"]
Severity = Literal["critical", "warning", "info"]


@dataclass(frozen=True)
class AlertItem:
    """One alert of a group. `fingerprint` is stable for one incident (same rule, same
    subject); `labels` identify it (alertname, cluster, severity, team, …) the way
    Alertmanager's labels do, `annotations` describe it (summary, description)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    url: str = ""


@dataclass(frozen=True)
class Notification:
    """A grouped message for one team. `group_key` is stable for the group (rule and the
    grouping labels' values), so a receiver can thread firing and resolved messages."""

    team_id: int
    group_key: str
    status: Status
    severity: Severity
    title: str
    summary: str
    alerts: tuple[AlertItem, ...]
    rule_name: str = ""
    channel_ids: tuple[int, ...] | None = field(default=None)
    """Only these channels of the team; None means every enabled channel of the team."""
