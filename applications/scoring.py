"""Scores of the feasible clusters and their order, for `applications.scheduler`.

Every prioritizer's raw score is normalized to -100..100 across the feasible clusters
((value - low) / (high - low) * 200 - 100; equal scores are 0; no value is -100), times
its weight, summed, minus 1000 per avoided taint; clusters are ranked by total, then name.

Exact Decimal arithmetic for 10,000 clusters costs about 100 ms, so the ranking is found
in floats with a proven error bound, and Decimals are computed only where they decide
something: the lowest and highest raw score of each prioritizer, the chosen clusters'
published scores, and the order of clusters whose float totals are within the error bound
of each other (sorted exactly by total, then name). The result is the reference result
(tests/placement/test_scheduler_equality.py checks it).

Each pass over the clusters is one list comprehension or a C-level builtin (min, max,
sorted): at 10,000 clusters a Python-level loop with a call per cluster costs milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from applications.scheduler import Candidate, PerReplica

ZERO = Decimal(0)
GIB = Decimal(2**30)

# The clusters the first segment of a ranking sorts (`Scores._segments`).
FIRST = 128
# The float pass's rounding unit: generous (a float operation is within 1.1e-16 of the
# exact result, a Decimal one within 1e-27; a raw score takes at most a few of either).
UNIT = 1e-15
EPS = 2.0**-52  # float64's relative rounding unit


def raw(name: str, c: Candidate, need: PerReplica) -> Decimal | None:
    """The exact raw score of prioritizer `name` (None: the cluster has no value)."""
    if name == "least_allocated":
        return c.least_allocated
    if name in ("resource_balance", "balance"):  # `balance`: its deprecated name
        cpu = (c.requested_cpu + need.cpu) / c.allocatable_cpu if c.allocatable_cpu else ZERO
        memory = (
            (c.requested_memory + need.memory) / c.allocatable_memory
            if c.allocatable_memory
            else ZERO
        )
        return -abs(cpu - memory)
    if name == "steady":
        return Decimal(1) if c.current else ZERO
    if name == "cheapest":
        if c.cpu_price is None or c.ram_price is None:
            return None
        return -(c.cpu_price * need.cpu + c.ram_price * need.memory / GIB)
    if name == "allocatable_cpu":  # OCM's ResourceAllocatableCPU
        return c.allocatable_cpu
    if name == "allocatable_memory":  # OCM's ResourceAllocatableMemory
        return c.allocatable_memory
    raise ValueError(f"unknown prioritizer {name!r}")


# What each prioritizer's raw score reads of a cluster (besides the per-replica request):
# clusters equal in all of it have equal totals, so a total is computed once per distinct
# input, not per cluster (a fleet repeats its cluster sizes and loads).
INPUTS = {
    "least_allocated": ("least_allocated",),
    "resource_balance": (
        "requested_cpu",
        "allocatable_cpu",
        "requested_memory",
        "allocatable_memory",
    ),
    "balance": ("requested_cpu", "allocatable_cpu", "requested_memory", "allocatable_memory"),
    "steady": ("current",),
    "cheapest": ("cpu_price", "ram_price"),
    "allocatable_cpu": ("allocatable_cpu",),
    "allocatable_memory": ("allocatable_memory",),
}


def _many(feasible: Sequence[Candidate], indexes: list[int]) -> Sequence[Candidate]:
    """`feasible` at `indexes` (a table's `Subset` reads them in one go)."""
    many = getattr(feasible, "many", None)
    return many(indexes) if many is not None else [feasible[i] for i in indexes]


def _largest(values: np.ndarray) -> float:
    """The largest magnitude in `values` (NaN: no value; 0 when there is none)."""
    known = values[~np.isnan(values)]
    return float(np.abs(known).max()) if len(known) else 0.0


class Columns:
    """The feasible clusters' figures (`applications.table` rows, in `Candidate.floats`
    order) as arrays, each read when first asked for (NaN: no price)."""

    def __init__(self, read: Callable[[int], np.ndarray]) -> None:
        self._read = read
        self._columns: dict[int, np.ndarray] = {}

    def __getitem__(self, index: int) -> np.ndarray:
        column = self._columns.get(index)
        if column is None:
            column = self._columns[index] = self._read(index)
        return column


def raw_floats(name: str, columns: Columns, need: PerReplica) -> tuple[np.ndarray, float, bool]:
    """`raw` in floats for every feasible cluster, from the `columns` of their
    `Candidate.floats`, a bound on the error of each, and whether any cluster has no value
    (NaN).

    The bounds use the largest magnitude of each term over all clusters (an upper bound
    of the largest sum of magnitudes): cheaper to find, and as safe."""
    if name == "least_allocated":
        return columns[0], 2 * UNIT * _largest(columns[0]), False
    if name == "steady":
        return columns[1], 0.0, False
    if name in ("allocatable_cpu", "allocatable_memory"):
        column = columns[2 if name == "allocatable_cpu" else 3]
        return column, 2 * UNIT * _largest(column), False  # one rounding each
    if name in ("resource_balance", "balance"):
        by_cpu = _share(columns[4] + float(need.cpu), columns[2])
        by_memory = _share(columns[5] + float(need.memory), columns[3])
        values = -np.abs(by_cpu - by_memory)
        return values, 8 * UNIT * (_largest(by_cpu) + _largest(by_memory)), False
    if name == "cheapest":
        cpu, gib = float(need.cpu), float(need.memory / GIB)
        cpu_prices, ram_prices = columns[6], columns[7]
        values = -(cpu_prices * cpu + ram_prices * gib)  # unpriced clusters: NaN
        missing = bool(np.isnan(cpu_prices).any())
        scale = _largest(cpu_prices) * abs(cpu) + _largest(ram_prices) * abs(gib)
        return values, 8 * UNIT * scale, missing
    raise ValueError(f"unknown prioritizer {name!r}")


def _share(requested: np.ndarray, allocatable: np.ndarray) -> np.ndarray:
    """requested / allocatable, 0 where nothing is allocatable."""
    return np.divide(requested, allocatable, out=np.zeros(len(requested)), where=allocatable != 0)


def _near_boundary(values: np.ndarray, error: float) -> np.ndarray:
    """Where a figure within `error` of `values` could round (to 2 decimals) otherwise
    than the value does: a half hundredth within reach (with the product's own rounding),
    or a rounded figure of 0 (whose sign the float may not share)."""
    hundredths = values * 100
    half = np.abs(hundredths - np.floor(hundredths) - 0.5)
    reach = 100 * error + 4 * EPS * np.abs(hundredths)
    return (half <= reach) | (np.abs(hundredths) <= 0.5 + reach)


class Scores:
    """Every feasible cluster's total, exactly as the reference arithmetic defines it,
    and the clusters ranked by it (see the module's docstring)."""

    def __init__(
        self,
        weights: dict[str, int],
        feasible: Sequence[Candidate],
        columns: Columns,
        need: PerReplica,
        avoided: np.ndarray,
    ) -> None:
        self.weights = weights
        self.feasible = feasible
        self.columns = columns
        self.need = need
        self.avoided = avoided
        self.bounds: dict[str, tuple[Decimal, Decimal] | None] = {}
        self._raws: dict[tuple[str, int], Decimal | None] = {}
        self._by_price: dict[tuple[Decimal | None, Decimal | None], Decimal | None] = {}
        # Per distinct input (`_key`): the total, and the published (rounded) scores.
        self._totals: dict[Any, Decimal] = {}
        self._published: dict[Any, tuple[float, dict[str, float]]] = {}
        attributes = sorted({a for name in weights for a in INPUTS.get(name, ())})
        self._inputs = attrgetter(*attributes) if attributes else (lambda _: ())
        # The float pass's totals and scores per prioritizer, each with its error bound
        # (None: not computed, or computed exactly).
        self._floats: tuple[np.ndarray, float] | None = None
        self._float_scores: dict[str, tuple[np.ndarray, float]] = {}
        self._avoids = bool(avoided.any())

    def raw(self, name: str, index: int) -> Decimal | None:
        key = (name, index)
        if key not in self._raws:
            candidate = self.feasible[index]
            if name == "cheapest":  # clusters of a place share their prices: once per price
                prices = (candidate.cpu_price, candidate.ram_price)
                if prices not in self._by_price:
                    self._by_price[prices] = raw(name, candidate, self.need)
                self._raws[key] = self._by_price[prices]
            else:
                self._raws[key] = raw(name, candidate, self.need)
        return self._raws[key]

    def score(self, name: str, index: int) -> Decimal:
        value = self.raw(name, index)
        bounds = self.bounds[name]
        if bounds is None:
            return ZERO  # no cluster has a value
        if value is None:
            return Decimal(-100)
        low, high = bounds
        if high == low:
            return ZERO
        return (value - low) / (high - low) * 200 - 100

    def _key(self, index: int) -> Any:
        """Everything the total of cluster `index` depends on (without the avoided taints
        when no cluster has any: no tuple per cluster)."""
        if self._avoids:
            return (self._inputs(self.feasible[index]), int(self.avoided[index]))
        return self._inputs(self.feasible[index])

    def total(self, index: int) -> Decimal:
        return self._total(self._key(index), index)

    def _total(self, key: Any, index: int) -> Decimal:
        """The total of the clusters of input `key` (`index`: one of them)."""
        total = self._totals.get(key)
        if total is None:
            total = sum(
                (weight * self.score(name, index) for name, weight in self.weights.items()),
                ZERO,
            )
            total = self._totals[key] = total - 1000 * int(self.avoided[index])
        return total

    def _keys(self, indexes: list[int]) -> list[Any]:
        """`_key` of each of `indexes` (C-level maps: no Python call per cluster)."""
        clusters = _many(self.feasible, indexes)
        if self._avoids:
            avoided = map(self.avoided.__getitem__, indexes)
            return list(zip(map(self._inputs, clusters), avoided, strict=True))
        return list(map(self._inputs, clusters))

    def published(self, indexes: list[int]) -> list[tuple[float, dict[str, float]]]:
        """The total and prioritizer scores of each of `indexes` as a decision shows them:
        the exact figures rounded to 2 decimals. Taken from the float pass (`ranked`) where
        no rounding boundary (a half hundredth) lies within its error bound, so that the
        float and the exact figure round alike; exactly, once per distinct input, where one
        does, where the rounded figure is 0 (its sign), or where the float pass gave up."""
        if self._floats is None:
            return self._published_exactly(indexes)
        at = np.array(indexes, dtype=np.int64)
        totals, total_error = self._floats
        figures = [(totals[at], total_error)]
        figures += [(scores[at], error) for scores, error in self._float_scores.values()]
        doubtful = np.zeros(len(indexes), dtype=bool)
        rounded = []
        for values, error in figures:
            if error:  # (an error of 0: the floats are the exact figures, 0 or -100)
                doubtful |= _near_boundary(values, error)
            rounded.append(list(map(round, values.tolist(), repeat(2))))
        names = list(self._float_scores)
        shown = [
            (total, dict(zip(names, scores, strict=True)))
            for total, *scores in zip(*rounded, strict=True)
        ]
        if doubtful.any():
            unsure = np.flatnonzero(doubtful).tolist()
            exact = self._published_exactly([indexes[i] for i in unsure])
            for position, figures_of in zip(unsure, exact, strict=True):
                shown[position] = figures_of
        return shown

    def _published_exactly(self, indexes: list[int]) -> list[tuple[float, dict[str, float]]]:
        """`published` in Decimal, once per distinct input."""
        keys = self._keys(indexes)
        shown = self._published
        for key, index in dict(zip(keys, indexes, strict=True)).items():
            if key not in shown:
                shown[key] = (
                    float(round(self._total(key, index), 2)),
                    {name: float(round(self.score(name, index), 2)) for name in self.weights},
                )
        return [(total, dict(scores)) for total, scores in map(shown.__getitem__, keys)]

    def ranked(self, first: int = 0) -> Iterator[int]:
        """Indexes of the feasible clusters, best first (total, then name): by float total,
        near ties settled exactly (`_settled`); `first`: how many the caller expects to
        read (the first segment sorts at least as many)."""
        count = len(self.feasible)
        if not count:
            return iter(())
        totals = -1000.0 * self.avoided.astype(np.float64)
        magnitude = 1 + 1000 * int(self.avoided.max()) + 100 * sum(map(abs, self.weights.values()))
        error = 10 * UNIT * magnitude  # the float sums themselves
        columns = self.columns
        shown = self._float_scores
        passes = []
        for name, weight in self.weights.items():  # every bound first: `total` needs them all
            values, delta, missing = raw_floats(name, columns, self.need)
            self.bounds[name] = self._bounds(name, values, delta, missing)
            passes.append((name, weight, values, delta, missing))
        for name, weight, values, delta, missing in passes:
            bounds = self.bounds[name]
            absent = np.isnan(values) if missing else None
            if bounds is None or bounds[0] == bounds[1]:
                # every score is 0, or -100 for a cluster with no value: exact in floats
                scores = np.zeros(count)
                if bounds is not None and absent is not None:
                    scores[absent] = -100.0
                    totals = np.where(absent, totals - 100.0 * weight, totals)
                shown[name] = (scores, 0.0)
                continue
            low, span = float(bounds[0]), float(bounds[1] - bounds[0])
            if not span > 0:
                self._floats = None  # published exactly too
                return iter(self._ranked_exactly(range(count)))
            factor = 200.0 / span
            if absent is not None:
                # (low - low) * factor - 100 is exactly -100: a cluster with no value's score
                values = np.where(absent, low, values)
            scores = (values - low) * factor - 100.0
            totals = totals + weight * scores
            shown[name] = (scores, 1000 * delta / span + 2000 * UNIT)
            error += abs(weight) * (1000 * delta / span + 2000 * UNIT)
        self._floats = (totals, error)
        return itertools.chain.from_iterable(self._segments(totals, 2 * error, first))

    def _segments(self, totals: np.ndarray, gap: float, first: int) -> Iterator[list[int]]:
        """`_settled` order, a segment at a time: the best FIRST clusters (then four times
        as many, and so on) are sorted only when the previous ones have been read (a pick
        of 20 clusters of 10,000 reads one segment). A segment ends where a gap wider than
        `gap` separates its lowest total from the highest left, so no run of near ties
        spans two segments and the order is the one a full sort gives."""
        left = np.arange(len(totals))
        size = max(FIRST, first)
        while len(left):
            values = totals[left]
            if size >= len(left):
                yield self._settled(left, values, gap)
                return
            kth = -np.partition(-values, size - 1)[size - 1]
            top = values >= kth
            low = float(values[top].min())
            below = values[~top]
            for _ in range(8):  # near ties across the cut: move it below them
                if not len(below) or float(below.max()) < low - gap:
                    break
                top = values >= float(below.max())
                low = float(values[top].min())
                below = values[~top]
            else:
                top = np.ones(len(values), dtype=bool)  # a long chain of near ties: all
            yield self._settled(left[top], values[top], gap)
            left = left[~top]
            size *= 4

    def _settled(self, indexes: np.ndarray, totals: np.ndarray, gap: float) -> list[int]:
        """`indexes` (ascending, their float `totals`) by float total, highest first, with
        every run of clusters closer than `gap` to the next one in exact order (total, then
        name). A run whose clusters all have the same input (`_key`) is in that order
        already: equal inputs give equal float totals, and the stable sort keeps them in
        index (name) order. So only runs that mix inputs are sorted exactly, and inputs are
        read only for clusters in runs."""
        sorter = np.argsort(-totals, kind="stable")
        order = indexes[sorter]
        result: list[int] = order.tolist()
        by_total = totals[sorter]
        close = by_total[:-1] - by_total[1:] <= gap  # position k and k + 1: one run
        if not close.any():
            return result
        in_run = np.zeros(len(result), dtype=bool)
        in_run[:-1] |= close
        in_run[1:] |= close
        positions = np.flatnonzero(in_run)
        # An id per distinct input: the first position's number (`setdefault` keeps it).
        first: dict[Any, int] = {}
        keys = self._keys(order[positions].tolist())
        ids = np.full(len(result), -1, dtype=np.int64)
        ids[positions] = np.fromiter(map(first.setdefault, keys, itertools.count()), np.int64)
        mixed = close & (ids[:-1] != ids[1:])
        if not mixed.any():
            return result
        runs = np.concatenate(([0], np.cumsum(~close)))  # run number per position
        for run in np.unique(runs[:-1][mixed]).tolist():
            start = int(np.searchsorted(runs, run))
            end = int(np.searchsorted(runs, run, side="right"))
            result[start:end] = self._ranked_exactly(result[start:end])
        return result

    def _bounds(
        self, name: str, values: np.ndarray, delta: float, missing: bool
    ) -> tuple[Decimal, Decimal] | None:
        """The exact lowest and highest raw scores: only clusters whose float score is
        within twice the error bound of the float extremes can hold them."""
        known = ~np.isnan(values) if missing else np.ones(len(values), dtype=bool)
        if not known.any():
            return None
        low, high = float(values[known].min()), float(values[known].max())
        if not delta:  # floats exact here (steady; all zero): one cluster per extreme
            near_low = [int(np.flatnonzero(values == low)[0])]
            near_high = [int(np.flatnonzero(values == high)[0])]
        else:
            near_low = np.flatnonzero(known & (values <= low + 2 * delta)).tolist()
            near_high = np.flatnonzero(known & (values >= high - 2 * delta)).tolist()
        exact_low = min(self._known(name, i) for i in self._distinct(name, near_low))
        exact_high = max(self._known(name, i) for i in self._distinct(name, near_high))
        return exact_low, exact_high

    def _distinct(self, name: str, indexes: list[int]) -> list[int]:
        """One of `indexes` per distinct input of prioritizer `name` (equal inputs, equal
        raw scores: clusters of a place share their prices)."""
        if len(indexes) < 8:
            return indexes
        inputs = attrgetter(*INPUTS[name])
        clusters = _many(self.feasible, indexes)
        return list(dict(zip(map(inputs, clusters), indexes, strict=True)).values())

    def _known(self, name: str, index: int) -> Decimal:
        value = self.raw(name, index)
        assert value is not None
        return value

    def _ranked_exactly(self, indexes: Iterable[int]) -> list[int]:
        """`indexes` by exact total (highest first), then name. The feasible clusters are in
        name order, so by index; a total is computed once per distinct input: near ties
        are mostly clusters of equal size and load."""
        ordered = sorted(indexes)
        keys = self._keys(ordered)
        firsts = dict(zip(keys, ordered, strict=True))
        if len(firsts) == 1:
            return ordered  # one input: equal totals
        totals = {key: self._total(key, index) for key, index in firsts.items()}
        by_index = dict(zip(ordered, map(totals.__getitem__, keys), strict=True))
        ordered.sort(key=by_index.__getitem__, reverse=True)  # stable: name order kept
        return ordered
