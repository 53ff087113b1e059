"""The placement scheduler (pure): filter clusters by selectors and predicates, score the
rest with weighted prioritizers, pick under spread constraints, divide replicas.

As in OCM's Placement: every prioritizer's raw scores are normalized to -100..100 across
the feasible clusters, multiplied by its weight (-10..10) and summed. Ties are broken by
cluster name, so the same input always gives the same decision. Every excluded cluster
carries the predicate that excluded it.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from operator import attrgetter
from typing import Any

from clusters.labels import LabelSelector

PRIORITIZERS = ("least_allocated", "balance", "steady", "cheapest")
FIELDS = ("provider", "region", "zone", "environment", "version")
DIVISIONS = ("duplicated", "static", "capacity")
HEALTHY = ("ready", "degraded")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Candidate:
    name: str
    labels: dict[str, str]
    provider: str
    region: str
    zone: str
    environment: str
    version: str
    status: str
    taints: list[dict[str, str]]
    allocatable_cpu: Decimal  # cores
    allocatable_memory: Decimal  # bytes
    requested_cpu: Decimal
    requested_memory: Decimal
    cpu_price: Decimal | None = None  # per core-hour
    ram_price: Decimal | None = None  # per GB-hour
    current: bool = False  # chosen by the previous decision
    tolerated: str = ""  # why an unhealthy current cluster keeps its place (empty: it does not)
    # Derived once per candidate (a cached candidate serves many calls), not per call.
    free_cpu: Decimal = field(init=False, repr=False, compare=False)
    free_memory: Decimal = field(init=False, repr=False, compare=False)
    least_allocated: Decimal = field(init=False, repr=False, compare=False)
    least_allocated_float: float = field(init=False, repr=False, compare=False)
    # Everything the predicates read but capacity: clusters of a fleet share few of these.
    profile: str = field(init=False, repr=False, compare=False)
    # For the float pass of `_rank`: allocatable and requested cpu and memory; the prices.
    usage_floats: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)
    price_floats: tuple[float, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._derive_usage()
        derived = object.__setattr__
        # A string: its hash is computed once and kept (a tuple's is computed at every lookup).
        profile = (
            self.status,
            sorted(self.labels.items()),
            self.provider,
            self.region,
            self.zone,
            self.environment,
            self.version,
            self.taints,
        )
        derived(self, "profile", repr(profile))
        priced = self.cpu_price is not None and self.ram_price is not None
        derived(
            self,
            "price_floats",
            (float(self.cpu_price), float(self.ram_price)) if priced else None,  # type: ignore[arg-type]
        )

    def with_requested(self, cpu: Decimal, memory: Decimal) -> Candidate:
        """This cluster with other requested figures: what collection changes most often,
        so only what depends on them is derived again."""
        updated = copy.copy(self)
        object.__setattr__(updated, "requested_cpu", cpu)
        object.__setattr__(updated, "requested_memory", memory)
        updated._derive_usage()
        return updated

    def _derive_usage(self) -> None:
        derived = object.__setattr__
        free_cpu = max(self.allocatable_cpu - self.requested_cpu, ZERO)
        free_memory = max(self.allocatable_memory - self.requested_memory, ZERO)
        derived(self, "free_cpu", free_cpu)
        derived(self, "free_memory", free_memory)
        cpu = free_cpu / self.allocatable_cpu if self.allocatable_cpu else ZERO
        memory = free_memory / self.allocatable_memory if self.allocatable_memory else ZERO
        derived(self, "least_allocated", (cpu + memory) / 2)
        derived(self, "least_allocated_float", float(self.least_allocated))
        derived(
            self,
            "usage_floats",
            (
                float(self.allocatable_cpu),
                float(self.allocatable_memory),
                float(self.requested_cpu),
                float(self.requested_memory),
            ),
        )


@dataclass(frozen=True)
class PerReplica:
    cpu: Decimal
    memory: Decimal


@dataclass(frozen=True)
class PlacementSpec:
    selector: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    prioritizers: dict[str, int] = field(default_factory=lambda: {"least_allocated": 1})
    number_of_clusters: int | None = None
    max_per: dict[str, int] = field(default_factory=dict)  # at most N clusters per region/provider
    min_distinct: dict[str, int] = field(default_factory=dict)  # at least N regions/providers
    replicas: int = 1
    division: str = "duplicated"
    static_weights: dict[str, int] = field(default_factory=dict)
    # A chosen cluster that turns Unreachable keeps its place this long (OCM/Karmada's
    # toleration); then it leaves the decision and its replicas move.
    unreachable_toleration_seconds: int = 300


@dataclass
class Decision:
    chosen: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    not_selected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "excluded": self.excluded,
            "not_selected": self.not_selected,
            "warnings": self.warnings,
        }

    def summarized(self, first: int | None) -> dict[str, Any]:
        """`as_json` with at most the `first` clusters (by name, resp. rank) per predicate
        of `excluded` and per reason of `not_selected` (None: every one), and `summary`
        counting every one: 10,000 clusters explained one by one are 800 KiB."""
        excluded = _first_per(self.excluded, "predicate", first)
        not_selected = _first_per(self.not_selected, "reason", first)
        return {
            "chosen": self.chosen,
            "excluded": excluded[0],
            "not_selected": not_selected[0],
            "warnings": self.warnings,
            "summary": {
                "excluded": excluded[1],
                "not_selected": not_selected[1],
                "complete": len(excluded[0]) == len(self.excluded)
                and len(not_selected[0]) == len(self.not_selected),
            },
        }


def _first_per(
    entries: list[dict[str, Any]], key: str, first: int | None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    counts = Counter(entry[key] for entry in entries)
    if first is None:
        return entries, dict(counts)
    kept, seen = [], Counter[str]()
    for entry in entries:
        seen[entry[key]] += 1
        if seen[entry[key]] <= first:
            kept.append(entry)
    return kept, dict(counts)


def _tolerated(taint: dict[str, str], tolerations: list[dict[str, str]]) -> bool:
    for toleration in tolerations:
        if toleration.get("key") != taint["key"]:
            continue
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        if "value" in toleration and toleration["value"] != taint.get("value", ""):
            continue
        return True
    return False


UNJUDGED = ("", "")


class _Predicates:
    """The predicates of one call. Fleets repeat label sets, places and taints, so each
    distinct profile (everything but capacity) is judged once per call, not per cluster."""

    def __init__(self, spec: PlacementSpec, need: PerReplica) -> None:
        self.spec = spec
        self.selector = LabelSelector.parse(spec.selector)
        self.judged: dict[str, tuple[str, str] | None] = {}
        self.avoided: dict[str, int] = {}
        minimum = spec.replicas if spec.division == "duplicated" else 1
        self.cpu = need.cpu * minimum
        self.memory = need.memory * minimum

    def exclusion(self, candidate: Candidate) -> tuple[str, str] | None:
        if candidate.tolerated:  # an unhealthy cluster keeping its place: rare, not memoized
            reason = self._profile(candidate, healthy=True)
        else:
            reason = self.judged.get(candidate.profile, UNJUDGED)
            if reason is UNJUDGED:
                reason = self.judged[candidate.profile] = self._profile(candidate, healthy=False)
        if reason is None and (
            candidate.free_cpu < self.cpu or candidate.free_memory < self.memory
        ):
            return "CapacityFits", (
                f"needs {self.cpu} CPU and {_gib(self.memory)} GiB free, has "
                f"{candidate.free_cpu} CPU and {_gib(candidate.free_memory)} GiB"
            )
        return reason

    def _profile(self, candidate: Candidate, *, healthy: bool) -> tuple[str, str] | None:
        spec = self.spec
        if not healthy and candidate.status not in HEALTHY:
            return "Healthy", f"status is {candidate.status}"
        if not self.selector.matches(candidate.labels):
            return "LabelSelector", f"labels do not match {spec.selector!r}"
        for name, allowed in spec.fields.items():
            value = getattr(candidate, name)
            if allowed and value not in allowed:
                listed = ", ".join(allowed)
                return "FieldSelector", f"{name} {value or '(none)'} is not one of {listed}"
        for taint in candidate.taints:
            if taint["effect"] == "NoSelect" and not _tolerated(taint, spec.tolerations):
                return (
                    "TaintToleration",
                    f"taint {taint['key']}={taint.get('value', '')}:NoSelect is not tolerated",
                )
        return None

    def avoided_taints(self, candidate: Candidate) -> int:
        """PreferNoSelect taints not tolerated: each lowers the score by 1000."""
        if not candidate.taints:
            return 0
        key = candidate.profile
        count = self.avoided.get(key)
        if count is None:
            count = self.avoided[key] = sum(
                1
                for t in candidate.taints
                if t["effect"] == "PreferNoSelect" and not _tolerated(t, self.spec.tolerations)
            )
        return count


def _gib(value: Decimal) -> str:
    return f"{value / Decimal(2**30):.2f}"


def _raw(name: str, c: Candidate, need: PerReplica) -> Decimal | None:
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
        return -(c.cpu_price * need.cpu + c.ram_price * need.memory / Decimal(2**30))
    raise ValueError(f"unknown prioritizer {name!r}")


# The float pass's rounding unit: generous (a float operation is within 1.1e-16 of the
# exact result, a Decimal one within 1e-27; a raw score takes at most a few of either).
UNIT = 1e-15


def _raw_floats(
    name: str, feasible: list[Candidate], need: PerReplica
) -> tuple[list[float | None], float]:
    """`_raw` in floats for every feasible cluster, and a bound on the error of each."""
    if name == "least_allocated":
        values: list[float | None] = [c.least_allocated_float for c in feasible]
        scale = max((abs(v) for v in values if v is not None), default=0.0)
        return values, 2 * UNIT * scale
    if name == "steady":
        return [1.0 if c.current else 0.0 for c in feasible], 0.0
    if name == "balance":
        cpu, memory = float(need.cpu), float(need.memory)
        values, scale = [], 0.0
        for c in feasible:
            alloc_cpu, alloc_memory, requested_cpu, requested_memory = c.usage_floats
            by_cpu = (requested_cpu + cpu) / alloc_cpu if alloc_cpu else 0.0
            by_memory = (requested_memory + memory) / alloc_memory if alloc_memory else 0.0
            values.append(-abs(by_cpu - by_memory))
            if abs(by_cpu) + abs(by_memory) > scale:
                scale = abs(by_cpu) + abs(by_memory)
        return values, 8 * UNIT * scale
    if name == "cheapest":
        cpu, gib = float(need.cpu), float(need.memory / Decimal(2**30))
        values, scale = [], 0.0
        for c in feasible:
            if c.price_floats is None:
                values.append(None)
                continue
            by_cpu, by_memory = c.price_floats[0] * cpu, c.price_floats[1] * gib
            values.append(-(by_cpu + by_memory))
            if abs(by_cpu) + abs(by_memory) > scale:
                scale = abs(by_cpu) + abs(by_memory)
        return values, 8 * UNIT * scale
    raise ValueError(f"unknown prioritizer {name!r}")


class _Scores:
    """Every feasible cluster's total, as the reference arithmetic defines it: each
    prioritizer's Decimal raw score normalized to -100..100 across the feasible clusters
    ((value - low) / (high - low) * 200 - 100; equal scores are 0; no value is -100),
    times its weight, summed, minus 1000 per avoided taint.

    Exact Decimal arithmetic for 10,000 clusters costs about 100 ms, so the ranking is
    found in floats with a proven error bound, and Decimals are computed only where they
    decide something: the lowest and highest raw score of each prioritizer, the chosen
    clusters' published scores, and the order of clusters whose float totals are within
    the error bound of each other (sorted exactly by total, then name). The result is the
    reference result (tests/placement/test_scheduler_equality.py checks it)."""

    def __init__(
        self,
        weights: dict[str, int],
        feasible: list[Candidate],
        need: PerReplica,
        avoided: list[int],
    ) -> None:
        self.weights = weights
        self.feasible = feasible
        self.need = need
        self.avoided = avoided
        self.bounds: dict[str, tuple[Decimal, Decimal] | None] = {}
        self._raws: dict[tuple[str, int], Decimal | None] = {}
        self._totals: dict[int, Decimal] = {}

    def raw(self, name: str, index: int) -> Decimal | None:
        key = (name, index)
        if key not in self._raws:
            self._raws[key] = _raw(name, self.feasible[index], self.need)
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

    def ranked(self) -> list[int]:
        """Indexes of the feasible clusters, best first (total, then name)."""
        count = len(self.feasible)
        if not count:
            return []
        passes = []
        for name, weight in self.weights.items():
            values, delta = _raw_floats(name, self.feasible, self.need)
            self.bounds[name] = self._bounds(name, values, delta)
            passes.append((name, weight, values, delta))
        totals = [-1000.0 * a for a in self.avoided]
        magnitude = 1 + 1000 * max(self.avoided) + 100 * sum(map(abs, self.weights.values()))
        error = 10 * UNIT * magnitude  # the float sums themselves
        for name, weight, values, delta in passes:
            bounds = self.bounds[name]
            if bounds is None or bounds[0] == bounds[1]:
                # every score is 0, or -100 for a cluster with no value: exact in floats
                if bounds is not None:
                    totals = [
                        t - 100.0 * weight if v is None else t
                        for t, v in zip(totals, values, strict=True)
                    ]
                continue
            low, span = float(bounds[0]), float(bounds[1] - bounds[0])
            if not span > 0:
                return self._ranked_exactly(range(count))
            factor = 200.0 / span
            totals = [
                t - 100.0 * weight if v is None else t + weight * ((v - low) * factor - 100.0)
                for t, v in zip(totals, values, strict=True)
            ]
            error += abs(weight) * (1000 * delta / span + 2000 * UNIT)
        order = sorted(range(count), key=totals.__getitem__, reverse=True)
        ranked: list[int] = []
        group = [order[0]]
        for previous, index in pairwise(order):
            if totals[previous] - totals[index] > 2 * error:
                ranked += self._ranked_exactly(group) if len(group) > 1 else group
                group = []
            group.append(index)
        ranked += self._ranked_exactly(group) if len(group) > 1 else group
        return ranked

    def _bounds(
        self, name: str, values: list[float | None], delta: float
    ) -> tuple[Decimal, Decimal] | None:
        """The exact lowest and highest raw scores: only clusters whose float score is
        within twice the error bound of the float extremes can hold them."""
        known = [v for v in values if v is not None]
        if not known:
            return None
        low, high = min(known), max(known)
        below, above = low + 2 * delta, high - 2 * delta
        near_low = [i for i, v in enumerate(values) if v is not None and v <= below]
        near_high = [i for i, v in enumerate(values) if v is not None and v >= above]
        if not delta:  # floats exact here (steady; all zero): one cluster per extreme
            near_low, near_high = near_low[:1], near_high[:1]
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


def webster(total: int, weights: dict[str, Decimal]) -> dict[str, int]:
    """Sainte-Laguë (Webster) apportionment of `total` seats by weight. Each seat goes to
    the highest quotient weight / (2s + 1); ties go to the larger weight, then the name."""
    seats = {name: 0 for name in weights}
    if not weights or total <= 0:
        return seats
    for _ in range(total):
        best = max(
            (name for name in weights if weights[name] > 0),
            key=lambda n: (weights[n] / (2 * seats[n] + 1), weights[n], [-ord(ch) for ch in n]),
            default=None,
        )
        if best is None:
            break
        seats[best] += 1
    return seats


def schedule(spec: PlacementSpec, candidates: list[Candidate], need: PerReplica) -> Decision:
    decision = Decision()
    predicates = _Predicates(spec, need)
    feasible = []
    excluded = decision.excluded
    for candidate in sorted(candidates, key=attrgetter("name")):
        reason = predicates.exclusion(candidate)
        if reason is None:
            feasible.append(candidate)
        else:
            excluded.append(
                {"cluster": candidate.name, "predicate": reason[0], "reason": reason[1]}
            )
    weights = {name: weight for name, weight in spec.prioritizers.items() if weight}
    avoided = [predicates.avoided_taints(c) if c.taints else 0 for c in feasible]
    scores = _Scores(weights, feasible, need, avoided)
    order = scores.ranked()
    ranked = [feasible[i] for i in order]
    chosen = _pick(spec, ranked, decision)
    replicas = _divide(spec, chosen, need)
    # Names are unique: membership by name, not by comparing every field of a candidate.
    chosen_names = {c.name for c in chosen}
    for rank, index in enumerate(order, start=1):
        if len(decision.chosen) == len(chosen):
            break
        candidate = feasible[index]
        if candidate.name not in chosen_names:
            continue  # only chosen clusters carry their scores in the decision
        entry = {
            "cluster": candidate.name,
            "rank": rank,
            "score": float(round(scores.total(index), 2)),
            "scores": {name: float(round(scores.score(name, index), 2)) for name in weights},
        }
        if candidate.tolerated:
            entry["tolerated"] = candidate.tolerated
        decision.chosen.append({**entry, "replicas": replicas[candidate.name]})
    return decision


def _pick(spec: PlacementSpec, ranked: list[Candidate], decision: Decision) -> list[Candidate]:
    wanted = spec.number_of_clusters or len(ranked)
    chosen: list[Candidate] = []
    counts: dict[str, Counter[str]] = {by: Counter() for by in spec.max_per}
    for position, candidate in enumerate(ranked):
        if len(chosen) >= wanted:
            reason = f"enough clusters ({wanted})"
            decision.not_selected += [
                {"cluster": c.name, "reason": reason} for c in ranked[position:]
            ]
            break
        full = [
            by for by, limit in spec.max_per.items() if counts[by][getattr(candidate, by)] >= limit
        ]
        if full:
            decision.not_selected.append(
                {
                    "cluster": candidate.name,
                    "reason": f"spread: at most {spec.max_per[full[0]]} per {full[0]} "
                    f"({getattr(candidate, full[0])})",
                }
            )
            continue
        chosen.append(candidate)
        for by in counts:
            counts[by][getattr(candidate, by)] += 1
    for by, minimum in spec.min_distinct.items():
        distinct = {getattr(c, by) for c in chosen}
        if len(distinct) < minimum:
            decision.warnings.append(
                f"spread: wanted at least {minimum} distinct {by}s, the feasible clusters give "
                f"{len(distinct)}"
            )
    if spec.number_of_clusters and len(chosen) < spec.number_of_clusters:
        decision.warnings.append(
            f"wanted {spec.number_of_clusters} clusters, {len(chosen)} are feasible"
        )
    return chosen


def _divide(spec: PlacementSpec, chosen: list[Candidate], need: PerReplica) -> dict[str, int]:
    if spec.division == "duplicated":
        return {c.name: spec.replicas for c in chosen}
    if spec.division == "static":
        weights = {c.name: Decimal(spec.static_weights.get(c.name, 1)) for c in chosen}
    else:
        weights = {}
        for c in chosen:
            by_cpu = c.free_cpu / need.cpu if need.cpu else Decimal(10**6)
            by_memory = c.free_memory / need.memory if need.memory else Decimal(10**6)
            weights[c.name] = min(by_cpu, by_memory).to_integral_value(rounding="ROUND_FLOOR")
    return webster(spec.replicas, weights)
