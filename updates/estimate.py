"""The expected duration of a run (pure; docs/updates.md, "Preview"):

    duration = Σ over stages of ( wait_s + max over groups g of ⌈n_g / c_g⌉ x e_g + soak_s )

n_g: the group's clusters to change; c_g: its concurrency limit; e_g: the longest estimate
of its clusters (the change kind's `estimate_seconds`); soak_s: the stage's soak time;
wait_s: from the stage's expected start, the longest wait until a window of each of its
clusters opens. A stage with nothing to change takes no time; approvals count as zero (a
person decides when). Windows closing in the middle of a stage are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from updates.windows import Window, next_open


@dataclass(frozen=True)
class GroupLoad:
    clusters: int
    limit: int
    estimate_seconds: int
    # The windows of each of the group's clusters to change (an empty list: any time).
    windows: Sequence[Sequence[Window]] = field(default_factory=tuple)


@dataclass(frozen=True)
class StageLoad:
    groups: Sequence[GroupLoad]
    soak_seconds: int = 0


@dataclass(frozen=True)
class StageEstimate:
    starts: datetime
    wait_seconds: int
    work_seconds: int
    soak_seconds: int

    @property
    def seconds(self) -> int:
        return self.wait_seconds + self.work_seconds + self.soak_seconds


def work_seconds(group: GroupLoad) -> int:
    if group.clusters <= 0:
        return 0
    return math.ceil(group.clusters / max(group.limit, 1)) * group.estimate_seconds


def _wait(stage: StageLoad, at: datetime) -> int:
    """Seconds from `at` until every cluster of the stage may start (None: never → 0, the
    preview says so per cluster)."""
    longest = 0
    for group in stage.groups:
        for windows in group.windows:
            opens = next_open(windows, at)
            if opens is not None:
                longest = max(longest, int((opens - at).total_seconds()))
    return longest


def expected(stages: Sequence[StageLoad], start: datetime) -> list[StageEstimate]:
    """Each stage's expected start and length, in order, from `start`."""
    estimates: list[StageEstimate] = []
    at = start
    for stage in stages:
        work = max((work_seconds(group) for group in stage.groups), default=0)
        if work == 0:
            estimates.append(StageEstimate(at, 0, 0, 0))
            continue
        wait = _wait(stage, at)
        estimate = StageEstimate(at, wait, work, stage.soak_seconds)
        estimates.append(estimate)
        at += timedelta(seconds=estimate.seconds)
    return estimates


def expected_seconds(stages: Sequence[StageLoad], start: datetime) -> int:
    return sum(estimate.seconds for estimate in expected(stages, start))
