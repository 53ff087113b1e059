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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, compress, islice, repeat
from operator import attrgetter, itemgetter, not_
from typing import Any

import numpy as np

from applications.capacity import fittings, room
from applications.division import (
    MAX_WEIGHT,
    Dynamic,
    apportion,
    steady,
    webster,  # noqa: F401 (the scheduler's division, imported from here)
)
from applications.scoring import Scores
from clusters.labels import LabelSelector

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
HEALTHY = ("ready", "degraded")
ZERO = Decimal(0)
# Taint effects: excluded unless tolerated; ranked 1000 lower unless tolerated; excluded
# unless tolerated or already chosen (OCM's NoSelectIfNew: existing placements stay).
EFFECTS = ("NoSelect", "PreferNoSelect", "NoSelectIfNew")
# The most replicas a placement may ask for (refused above it on save and simulate).
MAX_REPLICAS = 1_000_000

# A candidate's figures in floats, for the float pass of `applications.scoring`:
# least allocated, current (1 or 0), allocatable and requested cpu and memory, and the
# cpu and ram prices (both NaN: no price).
Floats = tuple[float, float, float, float, float, float, float, float]


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
        cpu_price = ram_price = math.nan
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
        # Divided replicas that fit in no chosen cluster (a warning says so too).
        self.unschedulable = 0
        self._excluded, self._reasons = excluded or ([], [])
        self._capacity = capacity
        self._excluded_entries: list[dict[str, str]] | None = None
        # Not selected: the first (spread) by rank with their reasons, then `_rest` (of
        # `_rest_count` clusters) in rank order, every one for the same `_rest_reason`.
        # (Three lists, not a tuple per cluster: thousands of objects a call to collect.)
        self._passed_names: list[str] = []
        self._passed_reasons: list[str] = []
        self._passed_ranks: list[int] = []
        self._rest: Iterator[Candidate] = iter(())
        self._rest_read: list[str] = []
        self._rest_count = 0
        self._rest_reason = ""
        self._not_selected_entries: list[dict[str, Any]] | None = None

    def passed(self, candidate: Candidate, rank: int, reason: str) -> None:
        """`candidate`, in rank order, is not selected for `reason`."""
        self._passed_names.append(candidate.name)
        self._passed_reasons.append(reason)
        self._passed_ranks.append(rank)

    def without_replicas(self, ranks: list[int], names: list[str], reason: str) -> None:
        """The chosen clusters `names` (of `ranks`) get no replicas of a divided placement,
        so they leave it: not selected for `reason`, in rank order among the others (all
        rank before the clusters not read, `_rest`)."""
        if not names:
            return
        ranks = self._passed_ranks + ranks
        names = self._passed_names + names
        reasons = self._passed_reasons + [reason] * (len(ranks) - len(self._passed_ranks))
        order = sorted(range(len(ranks)), key=ranks.__getitem__)
        self._passed_ranks = [ranks[i] for i in order]
        self._passed_names = [names[i] for i in order]
        self._passed_reasons = [reasons[i] for i in order]

    @property
    def _passed(self) -> list[tuple[str, str]]:
        """(cluster, reason) of the clusters not selected before `_rest`, in rank order."""
        return list(zip(self._passed_names, self._passed_reasons, strict=True))

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
            "unschedulable": self.unschedulable,
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
        by_reason = Counter(self._passed_reasons)
        if self._rest_count:
            by_reason[self._rest_reason] += self._rest_count
        return {
            "chosen": self.chosen,
            "excluded": excluded,
            "not_selected": not_selected,
            "warnings": self.warnings,
            "unschedulable": self.unschedulable,
            "summary": {
                "excluded": dict(by_predicate),
                "not_selected": dict(by_reason),
                "complete": len(excluded) == len(self._excluded)
                and len(not_selected) == len(self._passed_names) + self._rest_count,
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


def _tolerated(taint: dict[str, str], tolerations: list[dict[str, Any]]) -> bool:
    """Kubernetes/OCM toleration matching. `Exists` matches any value of its key (an empty
    key: every taint); `Equal` needs key and value to match (a missing value is ""); an
    empty effect matches every effect. Without `operator`, a toleration with a value is
    `Equal` and one without is `Exists` (what Keelson did before operators existed)."""
    for toleration in tolerations:
        key = toleration.get("key", "")
        operator = toleration.get("operator") or ("Equal" if "value" in toleration else "Exists")
        if operator == "Exists":
            if key and key != taint["key"]:
                continue
        elif key != taint["key"] or toleration.get("value", "") != taint.get("value", ""):
            continue
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        return True
    return False


# Why a chosen cluster leaves a divided placement's decision.
NO_REPLICAS = "no replicas: the division gives this cluster none"

# An exclusion for capacity: its message names the cluster's free capacity, written only
# when read (`_Predicates.capacity`).
CAPACITY_FITS = ("CapacityFits", "")


class _Predicates:
    """The predicates of one call. Fleets repeat label sets, places and taints, so each
    distinct profile (everything but capacity) is judged once per call, not per cluster."""

    def __init__(self, spec: PlacementSpec, need: PerReplica) -> None:
        self.spec = spec
        self.need = need
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
            elif (candidate.free_cpu < cpu or candidate.free_memory < memory) and (
                not candidate.held or not self._fits_with_own(candidate)
            ):
                exclude(candidate)
                because(CAPACITY_FITS)
            else:
                keep(candidate)
                keep_floats(candidate.floats)
                avoid(avoids)
        return feasible, floats, avoided, (excluded, reasons)

    def _fits_with_own(self, candidate: Candidate) -> bool:
        cpu, memory = room(candidate, self.need)
        return cpu >= self.cpu and memory >= self.memory

    def capacity(self, candidate: Candidate) -> str:
        """Why `candidate` does not fit (the reason of a CapacityFits exclusion)."""
        cpu, memory = room(candidate, self.need)
        return (
            f"needs {self.cpu} CPU and {_gib(self.memory)} GiB free, has "
            f"{cpu} CPU and {_gib(memory)} GiB"
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
            effect = taint["effect"]
            if (
                effect == "NoSelect" or (effect == "NoSelectIfNew" and not candidate.current)
            ) and not _tolerated(taint, spec.tolerations):
                return (
                    "TaintToleration",
                    f"taint {taint['key']}={taint.get('value', '')}:{effect} is not tolerated",
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
    for old, new in DEPRECATED_PRIORITIZERS.items():
        if old in spec.prioritizers:
            decision.warnings.append(
                f"prioritizer {old!r} is deprecated: it is {new!r} (CPU against memory "
                f"requests), not OCM's Balance; rename it"
            )
    scores = Scores(weights, feasible, floats, need, avoided)
    ranks, indexes, chosen = _pick(spec, scores.ranked(), feasible, decision)
    replicas = _divide(spec, chosen, indexes, need, decision)
    if spec.division != "duplicated" and spec.replicas:
        # Karmada's rule: a cluster without replicas of a divided workload leaves the
        # decision (with 0 replicas, every chosen cluster stays: nothing is divided).
        dropped = list(map(not_, replicas))
        decision.without_replicas(
            list(compress(ranks, dropped)),
            [c.name for c in compress(chosen, dropped)],
            NO_REPLICAS,
        )
        ranks, indexes = list(compress(ranks, replicas)), list(compress(indexes, replicas))
        chosen, replicas = list(compress(chosen, replicas)), list(compress(replicas, replicas))
    shown = scores.published(indexes)
    decision.chosen = [
        {
            "cluster": candidate.name,
            "rank": rank,
            "score": total,
            "scores": by_prioritizer,
            **({"tolerated": candidate.tolerated} if candidate.tolerated else {}),
            "replicas": count,
        }
        for rank, (total, by_prioritizer), candidate, count in zip(
            ranks, shown, chosen, replicas, strict=True
        )
    ]
    return decision


def _pick(
    spec: PlacementSpec, order: Iterator[int], feasible: list[Candidate], decision: Decision
) -> tuple[list[int], list[int], list[Candidate]]:
    """The chosen clusters' ranks, indexes in `feasible`, and the clusters, best first
    (three lists, not a tuple per cluster). Reads `order` only as far as it must: the
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
    chosen = list(map(feasible.__getitem__, indexes))
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
    return ranks, indexes, chosen


def _divide(
    spec: PlacementSpec,
    chosen: list[Candidate],
    indexes: list[int],
    need: PerReplica,
    decision: Decision,
) -> list[int]:
    """Replicas per chosen cluster (`indexes`: their places in name order). Divided
    replicas never exceed a cluster's room; what fits nowhere is `decision.unschedulable`,
    with a warning. Static weights that are all 0 count as equal weights (Karmada's rule),
    with a warning. Divided in arrays by name order (the division's tie order)."""
    if spec.division == "duplicated":
        return [spec.replicas] * len(chosen)
    total = spec.replicas
    by_name = np.argsort(np.array(indexes, dtype=np.int64), kind="stable")
    fits = np.array(fittings(chosen, need, MAX_WEIGHT), dtype=np.int64)[by_name]
    caps = np.minimum(fits, total)
    if spec.division == "static":
        # From scratch: Webster is house-monotone, so with unchanged weights scaling only
        # adds (or only removes) replicas, and changed weights take effect at once.
        names = [chosen[i].name for i in by_name.tolist()]
        weights: list[int | Decimal] = list(map(spec.static_weights.get, names, repeat(1)))
        if chosen and total and not any(weights):
            decision.warnings.append(
                "static weights: every chosen cluster has weight 0, replicas divided equally"
            )
            weights = [1] * len(weights)
        shares = apportion(total, weights, caps)
    else:
        # Karmada's steady assignment: what each cluster holds stays (as much as still
        # fits), only the difference is divided (`applications.division`).
        held = np.fromiter(map(_held, chosen), np.int64, len(chosen))[by_name]
        mode: Dynamic = "aggregated" if spec.division == "aggregated" else "capacity"
        shares = steady(total, fits, np.minimum(held, fits), mode=mode)
    replicas = np.empty(len(chosen), dtype=np.int64)
    replicas[by_name] = shares
    placed = int(shares.sum())
    if placed < total and chosen:
        decision.unschedulable = total - placed
        decision.warnings.append(
            f"Unschedulable: {total - placed} of {total} replicas do not fit in the chosen "
            f"clusters (they have room for {int(caps.sum())})"
        )
    shared: list[int] = replicas.tolist()
    return shared


_held = attrgetter("held")
