"""Weekly maintenance windows (pure, no database).

A window opens on each of its ISO weekdays (1 = Monday … 7 = Sunday) at `start` local time
in its IANA time zone and stays open for `duration` of elapsed time, so it may cross
midnight (Fri 22:00 for 4 h is open until Sat 02:00) and a DST change (Sun 01:00 for 3 h on
the night clocks go forward closes at 05:00 local time, three real hours later). A start
time that does not exist that day (in the spring-forward gap) starts the window as many
minutes later as the gap is long (02:30 becomes 03:30); one that happens twice (fall back)
starts it at the first. A cluster in several windowed sets may change inside any of its
windows; in none, at any time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MAX_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time
    duration: timedelta
    timezone: str
    name: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def starts(self, first: date, last: date) -> Iterator[datetime]:
        """The instants (UTC) the window opens on local days `first` … `last`."""
        zone = self.zone
        day = first
        while day <= last:
            if day.isoweekday() in self.days:
                # fold=0: a gap time maps with the offset before the change (02:30 in the
                # spring-forward gap is 03:30), a repeated time to its first occurrence.
                local = datetime.combine(day, self.start, tzinfo=zone)
                yield local.astimezone(UTC)
            day += timedelta(days=1)

    def open_at(self, at: datetime) -> bool:
        local_day = at.astimezone(self.zone).date()
        lookback = self.duration.days + 2
        return any(
            start <= at < start + self.duration
            for start in self.starts(local_day - timedelta(days=lookback), local_day)
        )

    def next_start(self, at: datetime) -> datetime | None:
        """The first opening strictly after `at` (None for a window with no days)."""
        local_day = at.astimezone(self.zone).date()
        for start in self.starts(local_day - timedelta(days=1), local_day + timedelta(days=8)):
            if start > at:
                return start
        return None

    def describe(self, at: datetime) -> str:
        """An opening as the window's users read it: "Sat 02:00 Europe/Berlin"."""
        return f"{at.astimezone(self.zone).strftime('%a %H:%M')} {self.timezone}"


@dataclass(frozen=True)
class Opening:
    at: datetime
    window: Window

    def describe(self) -> str:
        return self.window.describe(self.at)


def is_open(windows: Sequence[Window], at: datetime) -> bool:
    """Whether a cluster with these windows may start changing at `at` (no windows: yes)."""
    return not windows or any(window.open_at(at) for window in windows)


def next_opening(windows: Sequence[Window], at: datetime) -> Opening | None:
    """When the cluster may next start changing: `at` itself if a window is open (or there
    is none), else the earliest opening; None when no window has a day."""
    if not windows:
        return None
    for window in windows:
        if window.open_at(at):
            return Opening(at=at, window=window)
    found = [(start, window) for window in windows if (start := window.next_start(at))]
    if not found:
        return None
    start, window = min(found, key=lambda pair: pair[0])
    return Opening(at=start, window=window)


def next_open(windows: Sequence[Window], at: datetime) -> datetime | None:
    """The instant from which the cluster may change: `at` when allowed now."""
    if not windows:
        return at
    opening = next_opening(windows, at)
    return opening.at if opening else None


def window_errors(
    *, days: object, start: object, duration_minutes: object, timezone: object
) -> dict[str, str]:
    """What is wrong with a window's fields, by field name (empty when it is valid)."""
    errors: dict[str, str] = {}
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days)
        or len(set(days)) != len(days)
    ):
        errors["days"] = "A non-empty list of distinct ISO weekdays, 1 (Monday) to 7 (Sunday)."
    if not isinstance(start, time):
        errors["start_time"] = "A time of day, HH:MM."
    if (
        isinstance(duration_minutes, bool)
        or not isinstance(duration_minutes, int)
        or not 1 <= duration_minutes <= MAX_MINUTES
    ):
        errors["duration_minutes"] = f"Minutes from 1 to {MAX_MINUTES} (one week)."
    if not isinstance(timezone, str) or not _known_zone(timezone):
        errors["timezone"] = (
            f"Unknown time zone {str(timezone)[:64]!r}; use an IANA name such as Europe/Berlin."
        )
    return errors


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def _known_zone(name: str) -> bool:
    if name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def windows_from(rows: Iterable[tuple[list[int], time, int, str, str]]) -> list[Window]:
    """Windows from (days, start, minutes, time zone, name) tuples."""
    return [
        Window(
            days=frozenset(days),
            start=start,
            duration=timedelta(minutes=minutes),
            timezone=zone,
            name=name,
        )
        for days, start, minutes, zone, name in rows
    ]
