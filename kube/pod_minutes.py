"""When a pod ran, for cost: OpenCost charges a pod for the minutes it ran in an hour.

A collection sees pods at one moment. A pod that started, or ended, within the hour
before it may have run only part of an hour the inventory prices; the collector lists
those pods on their allocation row (`partial`) with their start (the pod's
`status.startTime`) and, for a pod that has ended (Succeeded or Failed), its end (the
latest `finishedAt` of its containers). Cost computes each one's minutes in the hour it
prices. A pod running since before that is charged whole hours; a pod that ended earlier
costs nothing more. A pod deleted between two collections is not seen at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

RECENT = timedelta(hours=1)
ENDED = ("Succeeded", "Failed")
FIELDS = ("cpu_millis", "memory_bytes", "gpu")
USAGE_FIELDS = (
    "cpu_usage_millis",
    "memory_usage_bytes",
    "cpu_charged_millis",
    "memory_charged_bytes",
)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Kubernetes writes it (`2026-11-10T14:20:00Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def window(status: dict[str, Any], phase: str, now: datetime) -> dict[str, Any] | None:
    """{started, ended?} when the pod may have run part of an hour priced from a
    collection at `now`: started within the hour before, or ended within it. None for a
    pod running since earlier (whole hours), one that ended earlier, or one without a
    start (not yet started: charged as before, from its requests)."""
    started = parse_time(status.get("startTime"))
    if started is None:
        return None
    if phase in ENDED:
        ends = [
            parse_time(((container.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for container in status.get("containerStatuses") or ()
        ]
        known = [end for end in ends if end is not None]
        if not known or max(known) <= now - RECENT:
            return None
        return {"started": _iso(started), "ended": _iso(max(known))}
    if started <= now - RECENT:
        return None
    return {"started": _iso(started)}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def valid_partial(value: Any) -> bool:
    """An agent's `partial` list: {started, ended?, cpu_millis, memory_bytes, gpu, usage?}
    with times in RFC 3339 and non-negative integers."""
    if not isinstance(value, list):
        return False
    for entry in value:
        if not isinstance(entry, dict) or parse_time(entry.get("started")) is None:
            return False
        if "ended" in entry and parse_time(entry["ended"]) is None:
            return False
        for key in (*FIELDS, *USAGE_FIELDS):
            if key in entry or key in FIELDS:
                number = entry.get(key)
                if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                    return False
    return True
