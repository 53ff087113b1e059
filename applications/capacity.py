"""How many replicas of an application fit in a cluster, for `applications.scheduler`.

A cluster's room for an application is its free capacity plus what the application's own
replicas there already request (`Candidate.held`): an application never competes with
itself. `fitting` counts in Decimal; `fittings` counts many clusters at once in float
arrays and falls back to `fitting` only where float rounding could change the count."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

import numpy as np

from applications.table import (
    ALLOCATABLE_CPU,
    ALLOCATABLE_MEMORY,
    HELD,
    REQUESTED_CPU,
    REQUESTED_MEMORY,
)

if TYPE_CHECKING:
    from applications.scheduler import Candidate, PerReplica
    from applications.table import Table

ZERO = Decimal(0)
# float64's relative rounding unit (each conversion and operation is within half of it).
EPS = 2.0**-52


def room(candidate: Candidate, need: PerReplica) -> tuple[Decimal, Decimal]:
    """Free CPU and memory for this application on `candidate`: the cluster's free capacity
    plus what the application's own replicas there request (`held` x the per-replica
    request, never more than the cluster reports requested in all)."""
    if not candidate.held:
        return candidate.free_cpu, candidate.free_memory
    own_cpu = min(need.cpu * candidate.held, candidate.requested_cpu)
    own_memory = min(need.memory * candidate.held, candidate.requested_memory)
    return (
        max(candidate.allocatable_cpu - candidate.requested_cpu + own_cpu, ZERO),
        max(candidate.allocatable_memory - candidate.requested_memory + own_memory, ZERO),
    )


def fitting(candidate: Candidate, need: PerReplica, most: int) -> int:
    """How many replicas fit in `candidate`'s room, at most `most`."""
    cpu, memory = room(candidate, need)
    fit = most
    if need.cpu > 0:
        fit = min(fit, int((cpu / need.cpu).to_integral_value(rounding=ROUND_FLOOR)))
    if need.memory > 0:
        fit = min(fit, int((memory / need.memory).to_integral_value(rounding=ROUND_FLOOR)))
    return fit


def fittings(candidates: Sequence[Candidate], need: PerReplica, most: int) -> list[int]:
    """`fitting` of each of `candidates` (`fittings_of` over their table)."""
    from applications.table import Table

    table = Table.of(list(candidates))
    counted: list[int] = fittings_of(table, np.arange(len(table)), need, most).tolist()
    return counted


def fittings_of(table: Table, at: np.ndarray, need: PerReplica, most: int) -> np.ndarray:
    """`fitting` of the clusters of `table` at positions `at`, the same counts: computed in
    floats, and again in Decimal for a cluster whose float quotient lies within its
    rounding error of a whole number (where the floor could differ). At 10,000 clusters
    Decimal arithmetic per cluster costs tens of milliseconds, the arrays well under one."""
    count = len(at)
    fit = np.full(count, most, dtype=np.int64)
    if not count:
        return fit
    held = table.row(HELD)[at]
    doubtful = np.zeros(count, dtype=bool)
    for per, allocatable, requested in (
        (need.cpu, ALLOCATABLE_CPU, REQUESTED_CPU),
        (need.memory, ALLOCATABLE_MEMORY, REQUESTED_MEMORY),
    ):
        if per <= 0:
            continue
        step = float(per)
        if not 0 < step < float("inf"):
            exact = [fitting(table.candidate(i), need, most) for i in at.tolist()]
            return np.array(exact, dtype=np.int64)
        alloc = table.row(allocatable)[at]
        used = table.row(requested)[at]
        own = np.where(held > 0, np.minimum(step * held, used), 0.0)
        quotient = np.maximum(alloc - used + own, 0.0) / step
        whole = np.floor(quotient)
        # Each figure is within half a unit of its Decimal and each of the four operations
        # adds at most one more: 8 units of the magnitudes involved bound the error.
        error = 8 * EPS * ((np.abs(alloc) + np.abs(used) + np.abs(own)) / step + quotient)
        doubtful |= ((whole >= 1) & (quotient - whole <= error)) | (whole + 1 - quotient <= error)
        fit = np.minimum(fit, np.minimum(whole, most).astype(np.int64))
    for index in np.flatnonzero(doubtful).tolist():
        fit[index] = fitting(table.candidate(int(at[index])), need, most)
    return fit
