"""Beat without a single point of failure: run `celery -A fleet beat` on two or more
machines; one leads and schedules, the others wait (docs/operations.md).

The leader holds a PostgreSQL session advisory lock on a connection of its own
(core/db/lease.py) and checks it at every tick; a follower's tick does nothing but try the
lock. The lock frees itself when the leader's session ends (SIGKILL, machine lost), so a
follower leads within one tick (at most CELERY_BEAT_MAX_LOOP_INTERVAL seconds).

No interval is sent twice across a failover: each send first claims its interval
(operations.pipelines.interval_claim, a row unique on entry and interval start), so a new
leader re-sending what its predecessor sent just before dying sends nothing. The leader
also saves each entry's last run right after sending (CELERY_BEAT_SYNC_EVERY = 1), and a
new leader re-reads the schedule, so it resumes from where the former one stopped.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery.schedules import schedule as interval_schedule
from django_celery_beat.schedulers import DatabaseScheduler

from core.db.lease import Lease, holder_name
from operations.pipelines import interval_claim, interval_unclaim

logger = logging.getLogger(__name__)

# Advisory lock namespace and id of the beat lease (core/db/locks.py keys).
LEASE_KEY = (0x6B656C73, 1)  # "kels", 1
LEASE_APPLICATION = "keelson-beat"
# A crontab or other calendar schedule fires at most once a minute: its claims are minutes.
CALENDAR_PERIOD = 60.0


def claim_period(entry: Any) -> float:
    """Length in seconds of the intervals `entry`'s sends are claimed by."""
    if isinstance(entry.schedule, interval_schedule):
        every: timedelta = getattr(entry.schedule, "run_every")  # noqa: B009 (not in the stubs)
        return max(1.0, every.total_seconds())
    return CALENDAR_PERIOD


class LeaderScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler that schedules only while it holds the lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lease = Lease(LEASE_KEY, application_name=holder_name(LEASE_APPLICATION))
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._leading():
            return float(self.max_interval)
        result: float = super().tick(*args, **kwargs)
        return result

    def _leading(self) -> bool:
        if self.lease.held:
            if self.lease.renew():
                return True
            logger.warning("beat: lost the lease, now a follower")
            return False
        if not self.lease.acquire():
            return False
        logger.info("beat: leading (lease taken by %s)", self.lease.application_name)
        # Start from what the former leader saved: re-read the schedule, rebuild the heap.
        self._initial_read = True
        self._heap = None
        return True

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        """Send `entry` once per interval: claim the interval first, give the claim back
        if the send fails."""
        start = interval_claim(entry.name, claim_period(entry))
        if start is None:
            logger.info("beat: %s already sent for this interval, not again", entry.name)
            return None
        options = entry.options
        headers = {**options.get("headers", {}), "keelson_interval": start.isoformat()}
        entry.options = {**options, "headers": headers}  # the interval, for whoever looks
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception:
            interval_unclaim(entry.name, start)
            raise
        finally:
            entry.options = options

    def close(self) -> None:
        super().close()
        self.lease.release()
