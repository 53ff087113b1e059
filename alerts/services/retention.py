"""How long alert history is kept: resolved incidents, silences that ended and the groups
left with nothing to say are deleted KEELSON_ALERTS_RETENTION_DAYS after they ended.
Firing alerts and silences still in force are kept whatever their age."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from alerts.choices import AlertState
from alerts.models import Alert, AlertGroup, Silence


@transaction.atomic
def alerts_purge(*, now: datetime | None = None) -> dict[str, int]:
    """Delete what ended before the retention period; returns how many of each."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.KEELSON_ALERTS_RETENTION_DAYS)
    alerts, _ = Alert.objects.filter(state=AlertState.RESOLVED, ends_at__lt=cutoff).delete()
    silences, _ = Silence.objects.filter(ends_at__lt=cutoff).delete()
    # A group without alerts and without a notification pending is history too.
    groups, _ = (
        AlertGroup.objects.filter(next_flush_at__isnull=True, first_at__lt=cutoff)
        .exclude(Exists(Alert.objects.filter(group=OuterRef("pk"))))
        .delete()
    )
    return {"alerts": alerts, "silences": silences, "groups": groups}
