"""What a page shows for a cluster's status (pages only; the API keeps the raw status).

A cluster that is being provisioned, or was registered moments ago and has not answered a
probe yet, has not failed: its first probes may well find nothing listening. Pages show it
as Provisioning or Pending (neutral) rather than red Unreachable, and give it no health
score. A registered cluster that still has not answered after `pending_grace()` is shown
as what its probes say (Unreachable): a wrong address must not hide behind Pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, CharField, Count, F, Q, QuerySet, Value, When

from clusters.choices import ClusterStatus, Lifecycle
from clusters.models import Cluster

PROVISIONING = "provisioning"
PENDING = "pending"
LABELS = {PROVISIONING: "Provisioning", PENDING: "Pending"}
NOT_FAILED_YET = (ClusterStatus.UNKNOWN, ClusterStatus.UNREACHABLE)


def pending_grace() -> timedelta:
    """How long a never-seen cluster is Pending: a few rounds of probes, at least 5 minutes."""
    rounds = 4 * settings.KEELSON_HEALTH_UNREACHABLE_AFTER * settings.KEELSON_COLLECT_INTERVAL
    return max(timedelta(minutes=5), timedelta(seconds=rounds))


@dataclass(frozen=True)
class ShownStatus:
    value: str
    label: str

    @property
    def is_real(self) -> bool:
        """False for Provisioning/Pending: no probe has judged the cluster yet."""
        return self.value not in LABELS


def shown_status(
    *,
    status: str,
    last_seen_at: datetime | None,
    created_at: datetime | None,
    lifecycle: str | None,
    now: datetime,
) -> ShownStatus:
    if lifecycle == Lifecycle.PROVISIONING:
        return ShownStatus(PROVISIONING, LABELS[PROVISIONING])
    fresh = created_at is not None and now - created_at < pending_grace()
    if last_seen_at is None and status in NOT_FAILED_YET and fresh:
        return ShownStatus(PENDING, LABELS[PENDING])
    return ShownStatus(status, ClusterStatus(status).label)


def _provisioning_q() -> Q:
    return Q(provisioning__lifecycle=Lifecycle.PROVISIONING)


def _pending_q(now: datetime) -> Q:
    return Q(
        last_seen_at__isnull=True, status__in=NOT_FAILED_YET, created_at__gt=now - pending_grace()
    )


def not_judged_q(now: datetime) -> Q:
    """Clusters shown as Provisioning or Pending (the rule of `shown_status`, in SQL)."""
    return _provisioning_q() | _pending_q(now)


def with_shown_status(clusters: QuerySet[Cluster], *, now: datetime) -> QuerySet[Cluster]:
    """Annotate `shown_status` (a value of ClusterStatus, or provisioning/pending)."""
    return clusters.annotate(
        shown_status=Case(
            When(_provisioning_q(), then=Value(PROVISIONING)),
            When(_pending_q(now), then=Value(PENDING)),
            default=F("status"),
            output_field=CharField(),
        )
    )


def shown_counts(clusters: QuerySet[Cluster], *, now: datetime) -> list[tuple[ShownStatus, int]]:
    """Counts by shown status: every real status (zeros included), then Provisioning and
    Pending when there are any."""
    rows = dict(
        with_shown_status(clusters, now=now)
        .values_list("shown_status")  # type: ignore[misc]  # an annotation
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = [(ShownStatus(s.value, s.label), rows.get(s.value, 0)) for s in ClusterStatus]
    for value, label in LABELS.items():
        if rows.get(value):
            counts.append((ShownStatus(value, label), rows[value]))
    return counts


def shown_label(value: str) -> str:
    """The label of a shown status value ('pending' -> 'Pending')."""
    if value in LABELS:
        return LABELS[value]
    try:
        return str(ClusterStatus(value).label)
    except ValueError:
        return value
