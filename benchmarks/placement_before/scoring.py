# ruff: noqa
# mypy: ignore-errors
# Frozen copy of today's scheduler (issue 20) for the placement benchmark: see __init__.py.
"""Scores of the feasible clusters and their order, for `benchmarks.placement_before.scheduler`.

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

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.placement_before.scheduler import Candidate, Floats, PerReplica

ZERO = Decimal(0)
GIB = Decimal(2**30)

# The float pass's rounding unit: generous (a float operation is within 1.1e-16 of the
# exact result, a Decimal one within 1e-27; a raw score takes at most a few of either).
UNIT = 1e-15


def raw(name: str, c: Candidate, need: PerReplica) -> Decimal | None:
    """The exact raw score of prioritizer `name` (None: the cluster has no value)."""
    if name == "least_allocated":
        return c.least_allocated
    if name == "balance":
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
    raise ValueError(f"unknown prioritizer {name!r}")


def _largest(values: Sequence[float]) -> float:
    """The largest magnitude in `values` (0 when empty)."""
    return max(max(values), -min(values)) if values else 0.0


class Columns:
    """The feasible clusters' `Candidate.floats` column by column, each read when first
    asked for. (Not `zip(*rows)`: an iterator per row, 10,000 objects for the garbage
    collector to follow.)"""

    def __init__(self, rows: list[Floats]) -> None:
        self._rows = rows
        self._columns: dict[int, list[Any]] = {}

    def __getitem__(self, index: int) -> list[Any]:
        column = self._columns.get(index)
        if column is None:
            column = self._columns[index] = list(map(itemgetter(index), self._rows))
        return column


def raw_floats(
    name: str, columns: Columns, need: PerReplica
) -> tuple[list[float | None], float, bool]:
    """`raw` in floats for every feasible cluster, from the `columns` of their
    `Candidate.floats`, a bound on the error of each, and whether any cluster has no value
    (None).

    The bounds use the largest magnitude of each term over all clusters (an upper bound
    of the largest sum of magnitudes): cheaper to find, and as safe."""
    values: list[float | None]
    if name == "least_allocated":
        values = columns[0]
        return values, 2 * UNIT * _largest(columns[0]), False
    if name == "steady":
        return columns[1], 0.0, False
    if name == "balance":
        cpu, memory = float(need.cpu), float(need.memory)
        by_cpu = [
            (rc + cpu) / ac if ac else 0.0 for ac, rc in zip(columns[2], columns[4], strict=True)
        ]
        by_memory = [
            (rm + memory) / am if am else 0.0 for am, rm in zip(columns[3], columns[5], strict=True)
        ]
        values = [-abs(a - b) for a, b in zip(by_cpu, by_memory, strict=True)]
        return values, 8 * UNIT * (_largest(by_cpu) + _largest(by_memory)), False
    if name == "cheapest":
        cpu, gib = float(need.cpu), float(need.memory / GIB)
        cpu_prices, ram_prices = columns[6], columns[7]
        if None in cpu_prices:  # unpriced clusters have neither price
            values = [
                None if a is None else -(a * cpu + b * gib)
                for a, b in zip(cpu_prices, ram_prices, strict=True)
            ]
            cpu_prices = [a for a in cpu_prices if a is not None]
            ram_prices = [b for b in ram_prices if b is not None]
            missing = True
        else:
            values = [-(a * cpu + b * gib) for a, b in zip(cpu_prices, ram_prices, strict=True)]
            missing = False
        scale = _largest(cpu_prices) * abs(cpu) + _largest(ram_prices) * abs(gib)
        return values, 8 * UNIT * scale, missing
    raise ValueError(f"unknown prioritizer {name!r}")


class Scores:
    """Every feasible cluster's total, exactly as the reference arithmetic defines it,
    and the clusters ranked by it (see the module's docstring)."""

    def __init__(
        self,
        weights: dict[str, int],
        feasible: list[Candidate],
        floats: list[Floats],
        need: PerReplica,
        avoided: list[int],
    ) -> None:
        self.weights = weights
        self.feasible = feasible
        self.floats = floats
        self.need = need
        self.avoided = avoided
        self.bounds: dict[str, tuple[Decimal, Decimal] | None] = {}
        self._raws: dict[tuple[str, int], Decimal | None] = {}
        self._by_price: dict[tuple[Decimal | None, Decimal | None], Decimal | None] = {}
        self._totals: dict[int, Decimal] = {}

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

    def total(self, index: int) -> Decimal:
        if index not in self._totals:
            total = sum(
                (weight * self.score(name, index) for name, weight in self.weights.items()),
                ZERO,
            )
            self._totals[index] = total - 1000 * self.avoided[index]
        return self._totals[index]

    def ranked(self) -> Iterator[int]:
        """Indexes of the feasible clusters, best first (total, then name). The float
        totals and their order are computed now; near ties are settled exactly as they are
        reached, so a caller that reads only the first few clusters pays only for those."""
        count = len(self.feasible)
        if not count:
            return iter(())
        totals = [-1000.0 * a for a in self.avoided] if any(self.avoided) else [0.0] * count
        magnitude = 1 + 1000 * max(self.avoided) + 100 * sum(map(abs, self.weights.values()))
        error = 10 * UNIT * magnitude  # the float sums themselves
        columns = Columns(self.floats)
        passes = []
        for name, weight in self.weights.items():  # every bound first: `total` needs them all
            values, delta, missing = raw_floats(name, columns, self.need)
            self.bounds[name] = self._bounds(name, values, delta, missing)
            passes.append((name, weight, values, delta, missing))
        for name, weight, values, delta, missing in passes:
            bounds = self.bounds[name]
            if bounds is None or bounds[0] == bounds[1]:
                # every score is 0, or -100 for a cluster with no value: exact in floats
                if bounds is not None and missing:
                    totals = [
                        t - 100.0 * weight if v is None else t
                        for t, v in zip(totals, values, strict=True)
                    ]
                continue
            low, span = float(bounds[0]), float(bounds[1] - bounds[0])
            if not span > 0:
                return iter(self._ranked_exactly(range(count)))
            factor = 200.0 / span
            if missing:
                # (low - low) * factor - 100 is exactly -100: a cluster with no value's score
                values = [low if v is None else v for v in values]
            totals = [
                t + weight * ((v - low) * factor - 100.0)  # type: ignore[operator]
                for t, v in zip(totals, values, strict=True)
            ]
            error += abs(weight) * (1000 * delta / span + 2000 * UNIT)
        order = sorted(range(count), key=totals.__getitem__, reverse=True)
        return self._settled(order, totals, 2 * error)

    def _settled(self, order: list[int], totals: list[float], gap: float) -> Iterator[int]:
        """`order` (by float total) with every run of clusters closer than `gap` to the
        next one sorted exactly."""
        count = len(order)
        start = 0
        while start < count:
            end = start + 1
            while end < count and totals[order[end - 1]] - totals[order[end]] <= gap:
                end += 1
            if end - start == 1:
                yield order[start]
            else:
                yield from self._ranked_exactly(order[start:end])
            start = end

    def _bounds(
        self, name: str, values: list[float | None], delta: float, missing: bool
    ) -> tuple[Decimal, Decimal] | None:
        """The exact lowest and highest raw scores: only clusters whose float score is
        within twice the error bound of the float extremes can hold them."""
        known: list[float] = [v for v in values if v is not None] if missing else values  # type: ignore[assignment]
        if not known:
            return None
        low, high = min(known), max(known)
        if not delta:  # floats exact here (steady; all zero): one cluster per extreme
            near_low, near_high = [values.index(low)], [values.index(high)]
        else:
            below, above = low + 2 * delta, high - 2 * delta
            if missing:
                near_low = [i for i, v in enumerate(values) if v is not None and v <= below]
                near_high = [i for i, v in enumerate(values) if v is not None and v >= above]
            else:
                near_low = [i for i, v in enumerate(known) if v <= below]
                near_high = [i for i, v in enumerate(known) if v >= above]
        exact_low = min(self._known(name, i) for i in near_low)
        exact_high = max(self._known(name, i) for i in near_high)
        return exact_low, exact_high

    def _known(self, name: str, index: int) -> Decimal:
        value = self.raw(name, index)
        assert value is not None
        return value

    def _ranked_exactly(self, indexes: Iterable[int]) -> list[int]:
        feasible = self.feasible
        return sorted(indexes, key=lambda i: (-self.total(i), feasible[i].name))
