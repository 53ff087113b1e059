"""The placement scheduler (pure): filter clusters by selectors and predicates, score the
rest with weighted prioritizers, pick under spread constraints, divide replicas.

As in OCM's Placement: every prioritizer's raw scores are normalized to -100..100 across
the feasible clusters, multiplied by its weight (-10..10) and summed. Ties are broken by
cluster name, so the same input always gives the same decision. Every excluded cluster
carries the predicate that excluded it.

A cluster's room for an application is its free capacity plus what the application's own
replicas there already request (`Candidate.held`): an application never competes with
itself. Divided replicas never exceed any cluster's room; what does not fit anywhere is
reported as unschedulable, not overcommitted (docs/coming-from-karmada-ocm.md).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, compress, islice, repeat
from operator import attrgetter, not_
from typing import Any

import numpy as np

from applications.capacity import fittings_of
from applications.decision import CAPACITY_FITS, Decision, Excluded  # noqa: F401 (re-exported)
from applications.division import (
    MAX_WEIGHT,
    Dynamic,
    apportion,
    steady,
    webster,  # noqa: F401 (the scheduler's division, imported from here)
)
from applications.predicates import HEALTHY, Predicates
from applications.scoring import Columns, Scores
from applications.table import HELD, Subset, Table, least_allocated

PRIORITIZERS = (
    "least_allocated",
    "resource_balance",
    "steady",
    "cheapest",
    "allocatable_cpu",
    "allocatable_memory",
)
# Old names still accepted, with a warning in every decision (docs/coming-from-karmada-ocm.md):
# `balance` balanced CPU against memory, while OCM's Balance spreads across placements.
DEPRECATED_PRIORITIZERS = {"balance": "resource_balance"}
FIELDS = ("provider", "region", "zone", "environment", "version")
DIVISIONS = ("duplicated", "static", "capacity", "aggregated")
__all__ = ["HEALTHY", "Candidate", "Decision", "PerReplica", "PlacementSpec", "schedule"]
ZERO = Decimal(0)
# Taint effects: excluded unless tolerated; ranked 1000 lower unless tolerated; excluded
# unless tolerated or already chosen (OCM's NoSelectIfNew: existing placements stay);
# excluded and evicted unless tolerated, for tolerationSeconds at most (Karmada's NoExecute).
EFFECTS = ("NoSelect", "PreferNoSelect", "NoSelectIfNew", "NoExecute")
# The most replicas a placement may ask for (refused above it on save and simulate).
MAX_REPLICAS = 1_000_000

# A candidate's figures in floats, for the float pass of `applications.scoring`:
# least allocated, current (1 or 0), allocatable and requested cpu and memory, the cpu and
# ram prices (both NaN: no price), and free cpu and memory (each the float nearest the
# Decimal, so floats compare as the Decimals do, or equal: `applications.predicates`).
Floats = tuple[float, float, float, float, float, float, float, float, float, float]


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
    # Replicas of this application the previous decision placed here (0 unless `current`):
    # what the application's own pods request here is room for it, not competition.
    held: int = 0
    # Derived once per candidate (a cached candidate serves many calls), not per call.
    free_cpu: Decimal = field(init=False, repr=False, compare=False)
    free_memory: Decimal = field(init=False, repr=False, compare=False)
    least_allocated: Decimal = field(init=False, repr=False, compare=False)
    # Everything the predicates read but capacity: clusters of a fleet share few of these.
    profile: str = field(init=False, repr=False, compare=False)
    # What the float pass of `applications.scoring` reads, in one tuple (see `Floats`).
    floats: Floats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._derive_usage()
        derived = object.__setattr__
        # A string: its hash is computed once and kept (a tuple's is computed at every lookup).
        profile = (
            bool(self.tolerated),
            self.current,  # NoSelectIfNew taints spare current clusters
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
        for setter, value in zip(_SETTERS, _kept(self), strict=True):
            setter(updated, value)
        _set_requested_cpu(updated, cpu)
        _set_requested_memory(updated, memory)
        updated._derive_usage(self.floats)
        return updated

    def _derive_usage(self, kept: Floats | None = None) -> None:
        """Free capacity, least allocated and `floats` (`kept`: the floats of this cluster
        with other requested figures, whose figures that do not depend on them are kept)."""
        derived = object.__setattr__
        free_cpu = max(self.allocatable_cpu - self.requested_cpu, ZERO)
        free_memory = max(self.allocatable_memory - self.requested_memory, ZERO)
        derived(self, "free_cpu", free_cpu)
        derived(self, "free_memory", free_memory)
        cpu = free_cpu / self.allocatable_cpu if self.allocatable_cpu else ZERO
        memory = free_memory / self.allocatable_memory if self.allocatable_memory else ZERO
        derived(self, "least_allocated", (cpu + memory) / 2)
        if kept is not None:
            allocatable_cpu, allocatable_memory = kept[2], kept[3]
            cpu_price, ram_price = kept[6], kept[7]
        else:
            allocatable_cpu = float(self.allocatable_cpu)
            allocatable_memory = float(self.allocatable_memory)
            cpu_price = ram_price = math.nan
            if self.cpu_price is not None and self.ram_price is not None:
                cpu_price, ram_price = float(self.cpu_price), float(self.ram_price)
        derived(
            self,
            "floats",
            (
                least_allocated(
                    float(free_cpu), allocatable_cpu, float(free_memory), allocatable_memory
                ),
                1.0 if self.current else 0.0,
                allocatable_cpu,
                allocatable_memory,
                float(self.requested_cpu),
                float(self.requested_memory),
                cpu_price,
                ram_price,
                float(free_cpu),
                float(free_memory),
            ),
        )


# What `Candidate.with_requested` copies as it is: all but the requested figures and what
# `_derive_usage` derives from them.
_USAGE = {"requested_cpu", "requested_memory", "free_cpu", "free_memory", "least_allocated"}
_KEPT = tuple(name for name in Candidate.__slots__ if name not in _USAGE | {"floats"})
_kept = attrgetter(*_KEPT)
# The slots' own setters (a frozen dataclass refuses setattr): faster than
# object.__setattr__ by name.
_SETTERS = tuple(vars(Candidate)[name].__set__ for name in _KEPT)
_set_requested_cpu = vars(Candidate)["requested_cpu"].__set__
_set_requested_memory = vars(Candidate)["requested_memory"].__set__


@dataclass(frozen=True)
class PerReplica:
    cpu: Decimal
    memory: Decimal


@dataclass(frozen=True)
class PlacementSpec:
    selector: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
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


# Why a chosen cluster leaves a divided placement's decision.
NO_REPLICAS = "no replicas: the division gives this cluster none"


def schedule(
    spec: PlacementSpec,
    candidates: list[Candidate] | Table,
    need: PerReplica,
    *,
    by_name: bool = False,
    now: float | None = None,
) -> Decision:
    """The decision for `spec` over `candidates` (`by_name`: a list already sorted by name;
    a `Table` always is) at `now` (epoch seconds; default: the clock's)."""
    if not isinstance(candidates, Table):
        ordered = candidates if by_name else sorted(candidates, key=attrgetter("name"))
        candidates = Table.of(ordered)
    table = candidates
    predicates = Predicates(spec, need, time.time() if now is None else now)
    split = predicates.split(table)
    decision = Decision(excluded=split.excluded, capacity=predicates.capacity)
    weights = {name: weight for name, weight in spec.prioritizers.items() if weight}
    for old, new in DEPRECATED_PRIORITIZERS.items():
        if old in spec.prioritizers:
            decision.warnings.append(
                f"prioritizer {old!r} is deprecated: it is {new!r} (CPU against memory "
                f"requests), not OCM's Balance; rename it"
            )
    feasible = Subset(table, split.feasible)
    columns = Columns(lambda row: table.row(row)[split.at])
    scores = Scores(weights, feasible, columns, need, split.avoided)
    wanted = spec.number_of_clusters or len(feasible)
    order = scores.ranked(4 * wanted if spec.max_per else wanted)
    ranks, indexes = _pick(spec, order, feasible, decision)
    positions: list[int] = split.at[np.array(indexes, dtype=np.int64)].tolist()
    replicas = _divide(spec, table, positions, indexes, need, decision)
    if spec.division != "duplicated" and spec.replicas:
        # Karmada's rule: a cluster without replicas of a divided workload leaves the
        # decision (with 0 replicas, every chosen cluster stays: nothing is divided).
        dropped = list(map(not_, replicas))
        left = list(compress(indexes, dropped))
        decision.without_replicas(
            list(compress(ranks, dropped)),
            lambda: [c.name for c in feasible.many(left)],
            NO_REPLICAS,
        )
        ranks, indexes = list(compress(ranks, replicas)), list(compress(indexes, replicas))
        replicas = list(compress(replicas, replicas))
    decision.chosen_by(lambda: _chosen(scores, feasible, ranks, indexes, replicas))
    return decision


def _chosen(
    scores: Scores, feasible: Subset, ranks: list[int], indexes: list[int], replicas: list[int]
) -> list[dict[str, Any]]:
    """The chosen clusters' entries (written when first read: over thousands of chosen
    clusters, a divided placement's entries cost more than deciding)."""
    shown = scores.published(indexes)
    return [
        {
            "cluster": candidate.name,
            "rank": rank,
            "score": total,
            "scores": by_prioritizer,
            **({"tolerated": candidate.tolerated} if candidate.tolerated else {}),
            "replicas": count,
        }
        for rank, (total, by_prioritizer), candidate, count in zip(
            ranks, shown, feasible.many(indexes), replicas, strict=True
        )
    ]


def _pick(
    spec: PlacementSpec, order: Iterator[int], feasible: Subset, decision: Decision
) -> tuple[list[int], list[int]]:
    """The chosen clusters' ranks and indexes in `feasible`, best first (two lists, not a
    tuple per cluster). Reads `order` only as far as it must: the
    clusters after the last one needed are not selected for one reason, `enough
    clusters`, and are named only if someone asks."""
    wanted = spec.number_of_clusters or len(feasible)
    ranks: list[int] = []
    indexes: list[int] = []
    counts: dict[str, Counter[str]] = {by: Counter() for by in spec.max_per}
    if not spec.max_per:  # no spread limit: the first `wanted`, without a step per cluster
        indexes = list(islice(order, wanted))
        ranks = list(range(1, len(indexes) + 1))
        if len(indexes) < len(feasible):
            reason = f"enough clusters ({wanted})"
            decision.rest_not_selected(
                map(feasible.__getitem__, order), len(feasible) - len(indexes), reason
            )
    for position, index in enumerate(order if spec.max_per else ()):
        candidate = feasible[index]
        if len(indexes) >= wanted:
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
                position + 1,
                f"spread: at most {spec.max_per[full[0]]} per {full[0]} "
                f"({getattr(candidate, full[0])})",
            )
            continue
        ranks.append(position + 1)
        indexes.append(index)
        for by in counts:
            counts[by][getattr(candidate, by)] += 1
    for by, minimum in spec.min_distinct.items():
        distinct = {getattr(feasible[i], by) for i in indexes}
        if len(distinct) < minimum:
            decision.warnings.append(
                f"spread: wanted at least {minimum} distinct {by}s, the feasible clusters give "
                f"{len(distinct)}"
            )
    if spec.number_of_clusters and len(indexes) < spec.number_of_clusters:
        decision.warnings.append(
            f"wanted {spec.number_of_clusters} clusters, {len(indexes)} are feasible"
        )
    return ranks, indexes


def _divide(
    spec: PlacementSpec,
    table: Table,
    positions: list[int],
    indexes: list[int],
    need: PerReplica,
    decision: Decision,
) -> list[int]:
    """Replicas per chosen cluster (`positions`: their places in the table, `indexes`: in
    the feasible clusters, both in name order). Divided replicas never exceed a cluster's
    room; what fits nowhere is `decision.unschedulable`, with a warning. Static weights that
    are all 0 count as equal weights (Karmada's rule), with a warning. Divided in arrays by
    name order (the division's tie order)."""
    if spec.division == "duplicated":
        return [spec.replicas] * len(positions)
    total = spec.replicas
    by_name = np.argsort(np.array(indexes, dtype=np.int64), kind="stable")
    at = np.array(positions, dtype=np.int64)[by_name]
    fits = fittings_of(table, at, need, MAX_WEIGHT)
    caps = np.minimum(fits, total)
    if spec.division == "static":
        # From scratch: Webster is house-monotone, so with unchanged weights scaling only
        # adds (or only removes) replicas, and changed weights take effect at once.
        weights: list[int | Decimal] = [1] * len(at)
        if spec.static_weights:  # (no weights: every one 1, no name to read)
            names = [table.candidate(i).name for i in at.tolist()]
            weights = list(map(spec.static_weights.get, names, repeat(1)))
        if len(at) and total and not any(weights):
            decision.warnings.append(
                "static weights: every chosen cluster has weight 0, replicas divided equally"
            )
            weights = [1] * len(weights)
        shares = apportion(total, weights, caps)
    else:
        # Karmada's steady assignment: what each cluster holds stays (as much as still
        # fits), only the difference is divided (`applications.division`).
        held = table.row(HELD)[at].astype(np.int64)
        mode: Dynamic = "aggregated" if spec.division == "aggregated" else "capacity"
        shares = steady(total, fits, np.minimum(held, fits), mode=mode)
    replicas = np.empty(len(at), dtype=np.int64)
    replicas[by_name] = shares
    placed = int(shares.sum())
    if placed < total and len(at):
        decision.unschedulable = total - placed
        decision.warnings.append(
            f"Unschedulable: {total - placed} of {total} replicas do not fit in the chosen "
            f"clusters (they have room for {int(caps.sum())})"
        )
    shared: list[int] = replicas.tolist()
    return shared
