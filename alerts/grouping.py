"""Fingerprints, groups and when a group notifies, with Alertmanager's semantics. Pure logic.

- One alert per incident: its fingerprint hashes what identifies it (the rule and the
  subject: a cluster, a budget, an operation), so re-evaluating finds the same alert
  instead of a new one, and the same trouble coming back later carries the same
  fingerprint (a new incident of it, with a new start).
- Alerts of one rule whose `group_by` labels agree form one group and one notification
  (40 clusters unreachable in region eu-west-1 → one message listing 40).
- A new group waits `group_wait` to gather its first alerts; a group that already
  notified and changed (an alert joined or resolved) notifies again no sooner than
  `group_interval` after its last message; a group that did not change re-sends its
  firing alerts every `repeat_interval`, unless all of them are acknowledged.
- Silenced alerts are left out of messages, firing and resolved alike (as Alertmanager).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


def fingerprint(identity: dict[str, str]) -> str:
    """16 hex digits over the sorted labels (Alertmanager's fingerprints are 64-bit too)."""
    text = "\x00".join(f"{k}\x01{identity[k]}" for k in sorted(identity))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_labels(labels: dict[str, str], group_by: Iterable[str]) -> dict[str, str]:
    return {name: labels.get(name, "") for name in sorted(set(group_by))}


def group_key(rule_id: int, grouped: dict[str, str]) -> str:
    """Stable for a rule and its grouping labels' values: receivers thread on it."""
    return f"{rule_id}:{fingerprint(grouped)}"


@dataclass(frozen=True)
class Timing:
    group_wait: int  # seconds
    group_interval: int
    repeat_interval: int


def next_flush(
    *, now: datetime, first_at: datetime, last_flush_at: datetime | None, timing: Timing
) -> datetime:
    """When a group that just changed should notify."""
    if last_flush_at is None:
        return first_at + timedelta(seconds=timing.group_wait)
    return max(now, last_flush_at + timedelta(seconds=timing.group_interval))


@dataclass(frozen=True)
class Member:
    """What flushing needs to know of one alert of a group."""

    key: int
    firing: bool
    silenced: bool
    acknowledged: bool
    notified: bool  # its firing was in a message
    resolved_notified: bool  # its resolution was in a message


@dataclass(frozen=True)
class Plan:
    firing: tuple[int, ...]  # keys of the firing alerts the message lists
    resolved: tuple[int, ...]  # keys of the resolved alerts it lists
    repeat_at: datetime | None  # when to re-send if nothing changes (None: no repeat)

    @property
    def send(self) -> bool:
        return bool(self.firing or self.resolved)


def plan_flush(
    members: Iterable[Member], *, now: datetime, last_flush_at: datetime | None, timing: Timing
) -> Plan:
    """What a due group sends now. A message lists every firing, unsilenced alert of the
    group (as Alertmanager's) and the resolutions not yet told; a group where nothing
    changed re-sends only if the repeat interval passed and something is unacknowledged."""
    members = list(members)
    active = [m for m in members if m.firing and not m.silenced]
    new = [m for m in active if not m.notified]
    resolved = [
        m.key
        for m in members
        if not m.firing and not m.silenced and m.notified and not m.resolved_notified
    ]
    unacked = [m for m in active if not m.acknowledged]
    repeat_due = last_flush_at is not None and now >= last_flush_at + timedelta(
        seconds=timing.repeat_interval
    )
    repeat_at = now + timedelta(seconds=timing.repeat_interval) if unacked else None
    if new or resolved or (unacked and repeat_due):
        return Plan(tuple(m.key for m in active), tuple(resolved), repeat_at)
    if last_flush_at is not None and unacked:
        repeat_at = last_flush_at + timedelta(seconds=timing.repeat_interval)
    return Plan((), (), repeat_at)
