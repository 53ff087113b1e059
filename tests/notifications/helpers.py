"""Notifications and channels for the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Team
from notifications.models import Channel, Delivery
from notifications.services import ChannelSpec, channel_save
from notifications.types import AlertItem, Notification

HMAC_SECRET = "0123456789abcdef0123456789abcdef"


def grouped(
    team: Team, *, count: int = 2, status: str = "firing", severity: str = "critical"
) -> Notification:
    started = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    return Notification(
        team_id=team.pk,
        group_key="unreachable/region=eu",
        status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        title=f"{count} clusters unreachable in eu",
        summary="Clusters of region eu stopped answering.",
        alerts=tuple(
            AlertItem(
                fingerprint=f"fp-eu-{i}",
                labels={"alertname": "ClusterUnreachable", "cluster": f"eu-{i}", "region": "eu"},
                annotations={"summary": f"eu-{i} has not answered for 5 minutes"},
                starts_at=started,
                ends_at=started + timedelta(minutes=20) if status == "resolved" else None,
                url=f"https://keelson.example/clusters/eu-{i}/",
            )
            for i in range(count)
        ),
        rule_name="cluster-unreachable",
    )


def make_channel(team: Team, kind: str, name: str | None = None, **spec: Any) -> Channel:
    return channel_save(
        team=team, spec=ChannelSpec(name=name or kind, kind=kind, **spec), actor=None
    )


def make_due(delivery: Delivery) -> None:
    """Skip the backoff: the retry is due now."""
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
