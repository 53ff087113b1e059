"""What the alerts tests share: the notifications boundary captured, and a fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from notifications.types import Notification
from tests.notifications.conftest import alertmanager, receiver, smtp  # noqa: F401 (shared)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Notification]:
    """Every Notification the alerts engine hands to notifications.services.dispatch."""
    captured: list[Notification] = []

    def dispatch(notification: Notification) -> int:
        captured.append(notification)
        return 1

    monkeypatch.setattr("notifications.services.dispatch", dispatch)
    return captured


@pytest.fixture
def t0() -> datetime:
    """A fixed "now" the tests move forward by hand (whole seconds)."""
    return timezone.now().replace(microsecond=0)


def later(t0: datetime, seconds: float) -> datetime:
    return t0 + timedelta(seconds=seconds)


def labels_of(notification: Notification, name: str) -> list[str]:
    return sorted(item.labels[name] for item in notification.alerts)


def set_status(clusters: Any, status: str, at: datetime) -> None:
    from clusters.models import Cluster

    Cluster.objects.filter(pk__in=[c.pk for c in clusters]).update(
        status=status, status_changed_at=at
    )


@pytest.fixture(autouse=True)
def _fresh_eol_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads the end-of-life table its own database holds (a process caches it)."""
    monkeypatch.setattr("clusters.eol._cache", None)
