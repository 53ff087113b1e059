# ruff: noqa
# mypy: ignore-errors
# Frozen copy of today's scheduler (issue 20) for the placement benchmark: see __init__.py.
"""The placement scheduler (pure): filter clusters by selectors and predicates, score the
rest with weighted prioritizers, pick under spread constraints, divide replicas.

As in OCM's Placement: every prioritizer's raw scores are normalized to -100..100 across
the feasible clusters, multiplied by its weight (-10..10) and summed. Ties are broken by
cluster name, so the same input always gives the same decision. Every excluded cluster
carries the predicate that excluded it.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, islice
from operator import attrgetter, itemgetter
from typing import Any

from clusters.labels import LabelSelector
from benchmarks.placement_before.scoring import Scores

PRIORITIZERS = ("least_allocated", "balance", "steady", "cheapest")
FIELDS = ("provider", "region", "zone", "environment", "version")
DIVISIONS = ("duplicated", "static", "capacity")
HEALTHY = ("ready", "degraded")
ZERO = Decimal(0)

# A candidate's figures in floats, for the float pass of `benchmarks.placement_before.scoring`:
# least allocated, current (1 or 0), allocatable and requested cpu and memory, and the
# cpu and ram prices (both None: no price).
Floats = tuple[float, float, float, float, float, float, float | None, float | None]


@dataclass(frozen=True, slots=True)
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
    # Everything the predicates read but capacity: clusters of a fleet share few of these.
    profile: str = field(init=False, repr=False, compare=False)
    # What the float pass of `benchmarks.placement_before.scoring` reads, in one tuple (see `Floats`).
    floats: Floats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._derive_usage()
        derived = object.__setattr__
        # A string: its hash is computed once and kept (a tuple's is computed at every lookup).
        profile = (
            bool(self.tolerated),
            self.status,
            sorted(self.labels.items()),
            self.provider,
            self.region,
            self.zone,
            self.environment,
            self.version,
            self.taints,
        )
        # Interned: clusters of one profile share one string, found in a dict by identity.
        derived(self, "profile", sys.intern(repr(profile)))

    def with_requested(self, cpu: Decimal, memory: Decimal) -> Candidate:
        """This cluster with other requested figures: what collection changes most often,
        so only what depends on them is derived again (and no `copy.copy`, which goes
        through dataclasses' __getstate__/__setstate__ for a frozen class with slots)."""
        updated = object.__new__(Candidate)
        for name, value in zip(_KEPT, _kept(self), strict=True):
            object.__setattr__(updated, name, value)
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
        cpu_price = ram_price = None
        if self.cpu_price is not None and self.ram_price is not None:
            cpu_price, ram_price = float(self.cpu_price), float(self.ram_price)
        derived(
            self,
            "floats",
            (
                float(self.least_allocated),
                1.0 if self.current else 0.0,
                float(self.allocatable_cpu),
                float(self.allocatable_memory),
                float(self.requested_cpu),
                float(self.requested_memory),
                cpu_price,
                ram_price,
            ),
        )


# What `Candidate.with_requested` copies as it is: all but the requested figures and what
# `_derive_usage` derives from them.
_USAGE = {"requested_cpu", "requested_memory", "free_cpu", "free_memory", "least_allocated"}
_KEPT = tuple(name for name in Candidate.__slots__ if name not in _USAGE | {"floats"})
_kept = attrgetter(*_KEPT)


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


# Excluded clusters and, index for index, their (predicate, reason): two lists, not a
# tuple per cluster (thousands of objects a call for the garbage collector to follow).
Excluded = tuple[list[Candidate], list[tuple[str, str]]]


class Decision:
    """Chosen clusters with their scores and replicas, warnings, and why every other
    cluster was excluded (`excluded`, by name) or not selected (`not_selected`, by rank).

    Those explanations are written when read, not when deciding: at 10,000 clusters
    writing them costs more than the decision, and a summary reads only a few of them."""

    def __init__(
        self,
        *,
        excluded: Excluded | None = None,
        capacity: Callable[[Candidate], str] | None = None,
    ) -> None:
        self.chosen: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._excluded, self._reasons = excluded or ([], [])
        self._capacity = capacity
        self._excluded_entries: list[dict[str, str]] | None = None
        # Not selected: the first (spread) by rank with their reasons, then `_rest` (of
        # `_rest_count` clusters) in rank order, every one for the same `_rest_reason`.
        self._passed: list[tuple[str, str]] = []
        self._rest: Iterator[Candidate] = iter(())
        self._rest_read: list[str] = []
        self._rest_count = 0
        self._rest_reason = ""
        self._not_selected_entries: list[dict[str, Any]] | None = None

    def passed(self, candidate: Candidate, reason: str) -> None:
        """`candidate`, in rank order, is not selected for `reason`."""
        self._passed.append((candidate.name, reason))

    def rest_not_selected(self, rest: Iterator[Candidate], count: int, reason: str) -> None:
        """The `count` clusters of `rest` (rank order, read only when asked for) are not
        selected, every one for `reason`."""
        self._rest, self._rest_count, self._rest_reason = rest, count, reason

    @property
    def excluded(self) -> list[dict[str, str]]:
        if self._excluded_entries is None:
            self._excluded_entries = list(map(self._exclusion, self._excluded, self._reasons))
        return self._excluded_entries

    @property
    def not_selected(self) -> list[dict[str, Any]]:
        if self._not_selected_entries is None:
            self._not_selected_entries = [
                {"cluster": name, "reason": reason}
                for name, reason in self._passed + self._rest_named(self._rest_count)
            ]
        return self._not_selected_entries

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
        by_predicate = Counter(map(itemgetter(0), self._reasons))
        if first is None:
            excluded, not_selected = self.excluded, self.not_selected
        else:
            excluded = [
                self._exclusion(self._excluded[i], self._reasons[i])
                for i in self._first_excluded(first, by_predicate)
            ]
            passed = _first_per(self._passed, first)
            rest = self._rest_named(min(first, self._rest_count))
            not_selected = [{"cluster": name, "reason": reason} for name, reason in passed + rest]
        by_reason = Counter(map(itemgetter(1), self._passed))
        if self._rest_count:
            by_reason[self._rest_reason] += self._rest_count
        return {
            "chosen": self.chosen,
            "excluded": excluded,
            "not_selected": not_selected,
            "warnings": self.warnings,
            "summary": {
                "excluded": dict(by_predicate),
                "not_selected": dict(by_reason),
                "complete": len(excluded) == len(self._excluded)
                and len(not_selected) == len(self._passed) + self._rest_count,
            },
        }

    def _exclusion(self, candidate: Candidate, reason: tuple[str, str]) -> dict[str, str]:
        text = reason[1]
        if reason is CAPACITY_FITS:
            assert self._capacity is not None
            text = self._capacity(candidate)
        return {"cluster": candidate.name, "predicate": reason[0], "reason": text}

    def _first_excluded(self, first: int, counts: Counter[str]) -> list[int]:
        """Indexes of the first `first` excluded clusters per predicate (`counts`: how many
        each predicate excluded, so the search stops once every one has its first)."""
        wanted = sum(min(first, count) for count in counts.values())
        kept: list[int] = []
        seen = Counter[str]()
        for index, (predicate, _) in enumerate(self._reasons):
            if len(kept) == wanted:
                break
            if seen[predicate] < first:
                seen[predicate] += 1
                kept.append(index)
        return kept

    def _rest_named(self, count: int) -> list[tuple[str, str]]:
        """The first `count` of `_rest` as (cluster, reason), read from `_rest` once."""
        missing = count - len(self._rest_read)
        if missing > 0:
            self._rest_read += [c.name for c in islice(self._rest, missing)]
        reason = self._rest_reason
        return [(name, reason) for name in self._rest_read[:count]]


def _first_per(entries: list[tuple[str, str]], first: int) -> list[tuple[str, str]]:
    """At most the `first` (cluster, reason) entries per reason, in order."""
    kept, seen = [], Counter[str]()
    for entry in entries:
        if seen[entry[1]] < first:
            seen[entry[1]] += 1
            kept.append(entry)
    return kept


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


# An exclusion for capacity: its message names the cluster's free capacity, written only
# when read (`_Predicates.capacity`).
CAPACITY_FITS = ("CapacityFits", "")


class _Predicates:
    """The predicates of one call. Fleets repeat label sets, places and taints, so each
    distinct profile (everything but capacity) is judged once per call, not per cluster."""

    def __init__(self, spec: PlacementSpec, need: PerReplica) -> None:
        self.spec = spec
        self.selector = LabelSelector.parse(spec.selector)
        # per profile: (why excluded or None, avoided taints)
        self.judged: dict[str, tuple[tuple[str, str] | None, int]] = {}
        minimum = spec.replicas if spec.division == "duplicated" else 1
        self.cpu = need.cpu * minimum
        self.memory = need.memory * minimum

    def split(
        self, ordered: list[Candidate]
    ) -> tuple[list[Candidate], list[Floats], list[int], Excluded]:
        """The feasible clusters with their `floats` and avoided taints (PreferNoSelect not
        tolerated: each lowers the score by 1000), and the excluded ones with (predicate,
        reason), in order. One pass that reads each cluster once: at 10,000 clusters every
        pass over them costs a millisecond or more."""
        feasible: list[Candidate] = []
        floats: list[Floats] = []
        avoided: list[int] = []
        excluded: list[Candidate] = []
        reasons: list[tuple[str, str]] = []
        keep, keep_floats, avoid = feasible.append, floats.append, avoided.append
        exclude, because = excluded.append, reasons.append
        judged, cpu, memory = self.judged, self.cpu, self.memory
        for candidate in ordered:
            verdict = judged.get(candidate.profile)
            if verdict is None:
                verdict = judged[candidate.profile] = self._judge(candidate)
            reason, avoids = verdict
            if reason is not None:
                exclude(candidate)
                because(reason)
            elif candidate.free_cpu < cpu or candidate.free_memory < memory:
                exclude(candidate)
                because(CAPACITY_FITS)
            else:
                keep(candidate)
                keep_floats(candidate.floats)
                avoid(avoids)
        return feasible, floats, avoided, (excluded, reasons)

    def capacity(self, candidate: Candidate) -> str:
        """Why `candidate` does not fit (the reason of a CapacityFits exclusion)."""
        return (
            f"needs {self.cpu} CPU and {_gib(self.memory)} GiB free, has "
            f"{candidate.free_cpu} CPU and {_gib(candidate.free_memory)} GiB"
        )

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

    def _judge(self, candidate: Candidate) -> tuple[tuple[str, str] | None, int]:
        """Why the profile of `candidate` is excluded (None: it is not), and how many of its
        taints are avoided. An unhealthy cluster keeping its place (`tolerated`) is healthy
        enough (its profile says so)."""
        avoided = sum(
            1
            for t in candidate.taints
            if t["effect"] == "PreferNoSelect" and not _tolerated(t, self.spec.tolerations)
        )
        return self._profile(candidate, healthy=bool(candidate.tolerated)), avoided


def _gib(value: Decimal) -> str:
    return f"{value / Decimal(2**30):.2f}"


def webster(total: int, weights: dict[str, Decimal]) -> dict[str, int]:
    """Sainte-Laguë (Webster) apportionment of `total` seats by weight. Each seat goes to
    the highest quotient weight / (2s + 1); ties go to the larger weight, then the name."""
    seats = {name: 0 for name in weights}
    if not weights or total <= 0:
        return seats
    names = {name: [-ord(ch) for ch in name] for name in weights}  # the name's tie-break
    for _ in range(total):
        best = max(
            (name for name in weights if weights[name] > 0),
            key=lambda n: (weights[n] / (2 * seats[n] + 1), weights[n], names[n]),
            default=None,
        )
        if best is None:
            break
        seats[best] += 1
    return seats


def schedule(
    spec: PlacementSpec, candidates: list[Candidate], need: PerReplica, *, by_name: bool = False
) -> Decision:
    """The decision for `spec` over `candidates` (`by_name`: already sorted by name, as the
    candidate cache's are, so not sorted again)."""
    predicates = _Predicates(spec, need)
    ordered = candidates if by_name else sorted(candidates, key=attrgetter("name"))
    feasible, floats, avoided, excluded = predicates.split(ordered)
    decision = Decision(excluded=excluded, capacity=predicates.capacity)
    weights = {name: weight for name, weight in spec.prioritizers.items() if weight}
    scores = Scores(weights, feasible, floats, need, avoided)
    chosen = _pick(spec, scores.ranked(), feasible, decision)
    replicas = _divide(spec, [c for _, _, c in chosen], need)
    for rank, index, candidate in chosen:
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


def _pick(
    spec: PlacementSpec, order: Iterator[int], feasible: list[Candidate], decision: Decision
) -> list[tuple[int, int, Candidate]]:
    """The chosen clusters as (rank, index in `feasible`, cluster), best first. Reads
    `order` only as far as it must: the clusters after the last one needed are not
    selected for one reason, `enough clusters`, and are named only if someone asks."""
    wanted = spec.number_of_clusters or len(feasible)
    chosen: list[tuple[int, int, Candidate]] = []
    counts: dict[str, Counter[str]] = {by: Counter() for by in spec.max_per}
    for position, index in enumerate(order):
        candidate = feasible[index]
        if len(chosen) >= wanted:
            rest = chain((candidate,), (feasible[i] for i in order))
            reason = f"enough clusters ({wanted})"
            decision.rest_not_selected(rest, len(feasible) - position, reason)
            break
        full = [
            by for by, limit in spec.max_per.items() if counts[by][getattr(candidate, by)] >= limit
        ]
        if full:
            decision.passed(
                candidate,
                f"spread: at most {spec.max_per[full[0]]} per {full[0]} "
                f"({getattr(candidate, full[0])})",
            )
            continue
        chosen.append((position + 1, index, candidate))
        for by in counts:
            counts[by][getattr(candidate, by)] += 1
    for by, minimum in spec.min_distinct.items():
        distinct = {getattr(c, by) for _, _, c in chosen}
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
