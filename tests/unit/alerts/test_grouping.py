"""Grouping and notification timing with Alertmanager's semantics (group_wait for a new
group, group_interval after a change, repeat_interval when nothing changed), worked out
by hand on a timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.grouping import (
    Member,
    Timing,
    fingerprint,
    group_key,
    group_labels,
    next_flush,
    plan_flush,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMING = Timing(group_wait=5, group_interval=60, repeat_interval=3600)


def member(
    key: int,
    *,
    firing: bool = True,
    silenced: bool = False,
    acknowledged: bool = False,
    notified: bool = False,
    resolved_notified: bool = False,
) -> Member:
    return Member(key, firing, silenced, acknowledged, notified, resolved_notified)


def test_fingerprint_is_stable_and_order_free() -> None:
    a = fingerprint({"rule": "1", "subject": "cluster:7"})
    assert a == fingerprint({"subject": "cluster:7", "rule": "1"})
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != fingerprint({"rule": "1", "subject": "cluster:8"})


def test_group_key_depends_on_group_by_labels_only() -> None:
    eu1 = group_labels({"region": "eu", "cluster": "a"}, ["region"])
    eu2 = group_labels({"region": "eu", "cluster": "b"}, ["region"])
    us = group_labels({"region": "us", "cluster": "c"}, ["region"])
    assert group_key(3, eu1) == group_key(3, eu2) != group_key(3, us)
    assert group_key(3, eu1) != group_key(4, eu1)  # another rule, another group
    assert group_labels({"cluster": "a"}, []) == {}  # no group_by: one group per rule


def test_new_group_waits_group_wait_then_changes_wait_group_interval() -> None:
    assert next_flush(now=T0, first_at=T0, last_flush_at=None, timing=TIMING) == T0 + timedelta(
        seconds=5
    )
    last = T0 + timedelta(seconds=5)
    # a change 10 s after the last message waits until 60 s after it
    assert next_flush(
        now=last + timedelta(seconds=10), first_at=T0, last_flush_at=last, timing=TIMING
    ) == last + timedelta(seconds=60)
    # a change long after is sent at once
    late = last + timedelta(seconds=600)
    assert next_flush(now=late, first_at=T0, last_flush_at=last, timing=TIMING) == late


def test_first_flush_lists_every_firing_unsilenced_alert() -> None:
    plan = plan_flush(
        [member(1), member(2), member(3, silenced=True)], now=T0, last_flush_at=None, timing=TIMING
    )
    assert plan.send and plan.firing == (1, 2) and plan.resolved == ()
    assert plan.repeat_at == T0 + timedelta(seconds=3600)


def test_nothing_new_sends_nothing_until_the_repeat_interval() -> None:
    told = [member(1, notified=True), member(2, notified=True)]
    soon = plan_flush(told, now=T0 + timedelta(minutes=5), last_flush_at=T0, timing=TIMING)
    assert not soon.send and soon.repeat_at == T0 + timedelta(hours=1)
    later = plan_flush(told, now=T0 + timedelta(hours=1), last_flush_at=T0, timing=TIMING)
    assert later.send and later.firing == (1, 2)


def test_acknowledged_alerts_are_not_repeated() -> None:
    told = [member(1, notified=True, acknowledged=True)]
    plan = plan_flush(told, now=T0 + timedelta(hours=2), last_flush_at=T0, timing=TIMING)
    assert not plan.send and plan.repeat_at is None


def test_resolution_is_told_once_and_only_for_what_was_told_firing() -> None:
    members = [
        member(1, firing=False, notified=True),  # told firing, now resolved: told resolved
        member(2, firing=False, notified=False),  # fired and cleared inside the wait: nothing
        member(3, firing=False, notified=True, resolved_notified=True),  # told already
    ]
    plan = plan_flush(members, now=T0 + timedelta(minutes=2), last_flush_at=T0, timing=TIMING)
    assert plan.send and plan.firing == () and plan.resolved == (1,)
    assert plan.repeat_at is None


def test_a_mixed_message_lists_the_still_firing_and_the_resolved() -> None:
    members = [member(1, notified=True), member(2, firing=False, notified=True)]
    plan = plan_flush(members, now=T0 + timedelta(minutes=2), last_flush_at=T0, timing=TIMING)
    assert plan.firing == (1,) and plan.resolved == (2,)


def test_silenced_resolutions_stay_quiet() -> None:
    members = [member(1, firing=False, notified=True, silenced=True)]
    plan = plan_flush(members, now=T0 + timedelta(minutes=2), last_flush_at=T0, timing=TIMING)
    assert not plan.send
