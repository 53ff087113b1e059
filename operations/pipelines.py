"""Liveness of the periodic pipelines, and the per-interval claims that keep beat's sends
to one per interval across a failover.

A pipeline is a beat entry whose fan-out task records its run at its end
(`pipeline_ran`). It is overdue when it has not run for two of its intervals: one late
run is tolerated (a busy worker, a beat failover takes up to a minute), two are not.
The clock of a pipeline that never ran starts at install (the migration records a run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from operations.models import PipelineRun, ScheduleClaim

# Pipeline name -> its entry in CELERY_BEAT_SCHEDULE (which gives its interval).
PIPELINES = {
    "collection": "clusters-collect",
    "policies": "policies-evaluate",
    "costs": "cost-compute",
}
OVERDUE_INTERVALS = 2
CLAIM_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class PipelineState:
    name: str
    last_run: datetime | None
    interval: float  # seconds
    overdue: bool


def pipeline_interval(name: str) -> float:
    """Seconds between runs, from the beat schedule in the settings."""
    entry: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE[PIPELINES[name]]
    return float(entry["schedule"])


def pipeline_ran(name: str, *, at: datetime | None = None) -> None:
    """Record that `name` ran to its end now (called by its fan-out task)."""
    if name not in PIPELINES:
        raise KeyError(name)
    PipelineRun.objects.update_or_create(name=name, defaults={"last_run_at": at or timezone.now()})


def pipeline_liveness(*, now: datetime | None = None) -> list[PipelineState]:
    """Each pipeline's last run and whether it is overdue (no run for two intervals)."""
    now = now or timezone.now()
    last = dict(PipelineRun.objects.values_list("name", "last_run_at"))
    states = []
    for name in PIPELINES:
        interval = pipeline_interval(name)
        ran = last.get(name)
        overdue = ran is not None and (now - ran).total_seconds() > OVERDUE_INTERVALS * interval
        states.append(PipelineState(name=name, last_run=ran, interval=interval, overdue=overdue))
    return states


def interval_start(period: float, *, now: datetime) -> datetime:
    """The start of the interval of `period` seconds holding `now`, counted from the epoch."""
    seconds = math.floor(now.timestamp() / period) * period
    return datetime.fromtimestamp(seconds, tz=UTC)


def interval_claim(name: str, period: float, *, now: datetime | None = None) -> datetime | None:
    """Claim the send of `name` for the interval holding `now`: its start, or None when
    that interval was claimed already (by this beat or one that died after sending).
    Claims older than a day go at the same time."""
    now = now or timezone.now()
    start = interval_start(period, now=now)
    try:
        with transaction.atomic():
            ScheduleClaim.objects.create(name=name, interval_start=start)
    except IntegrityError:
        return None
    ScheduleClaim.objects.filter(name=name, interval_start__lt=now - CLAIM_RETENTION).delete()
    return start


def interval_unclaim(name: str, start: datetime) -> None:
    """Give a claim back (the send failed: the next beat tick may try again)."""
    ScheduleClaim.objects.filter(name=name, interval_start=start).delete()
