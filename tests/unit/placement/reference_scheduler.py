"""The placement scheduler as it was before the float ranking pass (commit 4cd6bbe), the
oracle of tests/unit/placement/test_scheduler_equality.py: the scheduler must give exactly its
decisions. Simple on purpose (Decimals and Fractions, seat-by-seat division), and corrected
where it shared the scheduler's bugs (issue 20): room for the application's own replicas,
capped division with the unschedulable remainder, all-zero static weights, the name
tie-break, Kubernetes toleration operators, NoSelectIfNew."""
# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from clusters.labels import LabelSelector

PRIORITIZERS = (
    "least_allocated",
    "resource_balance",
    "steady",
    "cheapest",
    "allocatable_cpu",
    "allocatable_memory",
)
FIELDS = ("provider", "region", "zone", "environment", "version")
DIVISIONS = ("duplicated", "static", "capacity", "aggregated")
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
    held: int = 0  # this application's replicas here, per the previous decision

    @property
    def free_cpu(self) -> Decimal:
        return max(self.allocatable_cpu - self.requested_cpu, ZERO)

    @property
    def free_memory(self) -> Decimal:
        return max(self.allocatable_memory - self.requested_memory, ZERO)


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
    unschedulable: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "excluded": self.excluded,
            "not_selected": self.not_selected,
            "warnings": self.warnings,
            "unschedulable": self.unschedulable,
        }


def _matches(toleration: dict[str, str], taint: dict[str, str]) -> bool:
    # Kubernetes: Exists ignores the value, an empty key with Exists matches every key;
    # Equal compares key and value. No operator: Equal when a value is given, else Exists.
    if "operator" in toleration:
        exists = toleration["operator"] == "Exists"
    else:
        exists = "value" not in toleration
    if toleration.get("effect", "") not in ("", taint["effect"]):
        return False
    if exists:
        return toleration.get("key", "") in ("", taint["key"])
    return toleration.get("key", "") == taint["key"] and toleration.get("value", "") == taint.get(
        "value", ""
    )


def _tolerated(taint: dict[str, str], tolerations: list[dict[str, str]]) -> bool:
    return any(_matches(toleration, taint) for toleration in tolerations)


def _room(candidate: Candidate, need: PerReplica) -> tuple[Decimal, Decimal]:
    own_cpu = min(need.cpu * candidate.held, candidate.requested_cpu)
    own_memory = min(need.memory * candidate.held, candidate.requested_memory)
    cpu = candidate.allocatable_cpu - (candidate.requested_cpu - own_cpu)
    memory = candidate.allocatable_memory - (candidate.requested_memory - own_memory)
    return max(cpu, ZERO), max(memory, ZERO)


def _fits(candidate: Candidate, need: PerReplica, replicas: int) -> bool:
    cpu, memory = _room(candidate, need)
    return cpu >= need.cpu * replicas and memory >= need.memory * replicas


def _exclusion(
    candidate: Candidate, spec: PlacementSpec, selector: LabelSelector, need: PerReplica
) -> tuple[str, str] | None:
    if candidate.status not in HEALTHY and not candidate.tolerated:
        return "Healthy", f"status is {candidate.status}"
    if not selector.matches(candidate.labels):
        return "LabelSelector", f"labels do not match {spec.selector!r}"
    for name, allowed in spec.fields.items():
        value = getattr(candidate, name)
        if allowed and value not in allowed:
            return "FieldSelector", f"{name} {value or '(none)'} is not one of {', '.join(allowed)}"
    for taint in candidate.taints:
        excludes = taint["effect"] == "NoSelect" or (
            taint["effect"] == "NoSelectIfNew" and not candidate.current
        )
        if excludes and not _tolerated(taint, spec.tolerations):
            return (
                "TaintToleration",
                f"taint {taint['key']}={taint.get('value', '')}:{taint['effect']} is not tolerated",
            )
    minimum = spec.replicas if spec.division == "duplicated" else 1
    if not _fits(candidate, need, minimum):
        cpu, memory = _room(candidate, need)
        return "CapacityFits", (
            f"needs {need.cpu * minimum} CPU and {_gib(need.memory * minimum)} GiB free, has "
            f"{cpu} CPU and {_gib(memory)} GiB"
        )
    return None


def _gib(value: Decimal) -> str:
    return f"{value / Decimal(2**30):.2f}"


def _raw(name: str, c: Candidate, need: PerReplica) -> Decimal | None:
    if name == "least_allocated":
        cpu = c.free_cpu / c.allocatable_cpu if c.allocatable_cpu else ZERO
        memory = c.free_memory / c.allocatable_memory if c.allocatable_memory else ZERO
        return (cpu + memory) / 2
    if name in ("resource_balance", "balance"):
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
    if name == "allocatable_cpu":
        return c.allocatable_cpu
    if name == "allocatable_memory":
        return c.allocatable_memory
    raise ValueError(f"unknown prioritizer {name!r}")


def _normalized(raw: dict[str, Decimal | None]) -> dict[str, Decimal]:
    """-100..100 across the clusters; equal scores are 0; a cluster with no value (no
    price, say) gets the lowest."""
    known = [value for value in raw.values() if value is not None]
    if not known:
        return {name: ZERO for name in raw}
    low, high = min(known), max(known)
    scores = {}
    for name, value in raw.items():
        if value is None:
            scores[name] = Decimal(-100)
        elif high == low:
            scores[name] = ZERO
        else:
            scores[name] = (value - low) / (high - low) * 200 - 100
    return scores


def webster(
    total: int, weights: dict[str, Decimal], caps: dict[str, int] | None = None
) -> dict[str, int]:
    """Seat by seat: each goes to the highest weight / (2s + 1) of a party below its cap;
    ties to the larger weight, then the smaller name (str order, as the ranking)."""
    seats = {name: 0 for name in weights}
    for _ in range(total):
        open_ = [n for n in weights if weights[n] > 0 and (caps is None or seats[n] < caps[n])]
        if not open_:
            break
        best = min(
            open_,
            key=lambda n: (-Fraction(int(weights[n]), 2 * seats[n] + 1), -weights[n], n),
        )
        seats[best] += 1
    return seats


def schedule(spec: PlacementSpec, candidates: list[Candidate], need: PerReplica) -> Decision:
    decision = Decision()
    if "balance" in spec.prioritizers:
        decision.warnings.append(
            "prioritizer 'balance' is deprecated: it is 'resource_balance' (CPU against memory "
            "requests), not OCM's Balance; rename it"
        )
    selector = LabelSelector.parse(spec.selector)
    feasible = []
    for candidate in sorted(candidates, key=lambda c: c.name):
        reason = _exclusion(candidate, spec, selector, need)
        if reason is None:
            feasible.append(candidate)
        else:
            decision.excluded.append(
                {"cluster": candidate.name, "predicate": reason[0], "reason": reason[1]}
            )
    per_prioritizer: dict[str, dict[str, Decimal]] = {}
    for name, weight in spec.prioritizers.items():
        if weight:
            raw = {c.name: _raw(name, c, need) for c in feasible}
            per_prioritizer[name] = _normalized(raw)
    totals: dict[str, Decimal] = {}
    for candidate in feasible:
        total = sum(
            (
                spec.prioritizers[name] * scores[candidate.name]
                for name, scores in per_prioritizer.items()
            ),
            ZERO,
        )
        avoided = [
            t
            for t in candidate.taints
            if t["effect"] == "PreferNoSelect" and not _tolerated(t, spec.tolerations)
        ]
        totals[candidate.name] = total - 1000 * len(avoided)
    ranked = sorted(feasible, key=lambda c: (-totals[c.name], c.name))
    chosen = _pick(spec, ranked, decision)
    replicas = _divide(spec, chosen, need, decision)
    if spec.division != "duplicated" and spec.replicas:
        # a chosen cluster given no replicas leaves the decision (Karmada)
        dropped = {c.name for c in chosen if replicas[c.name] == 0}
        decision.not_selected += [
            {"cluster": name, "reason": "no replicas: the division gives this cluster none"}
            for name in sorted(dropped)
        ]
        position = {c.name: i for i, c in enumerate(ranked)}
        decision.not_selected.sort(key=lambda entry: position[entry["cluster"]])
        chosen = [c for c in chosen if c.name not in dropped]
    # Names are unique: membership by name, not by comparing every field of a candidate.
    chosen_names = {c.name for c in chosen}
    for rank, candidate in enumerate(ranked, start=1):
        if candidate.name not in chosen_names:
            continue  # only chosen clusters carry their scores in the decision
        entry = {
            "cluster": candidate.name,
            "rank": rank,
            "score": float(round(totals[candidate.name], 2)),
            "scores": {
                name: float(round(scores[candidate.name], 2))
                for name, scores in per_prioritizer.items()
            },
        }
        if candidate.tolerated:
            entry["tolerated"] = candidate.tolerated
        decision.chosen.append({**entry, "replicas": replicas[candidate.name]})
    return decision


def _pick(spec: PlacementSpec, ranked: list[Candidate], decision: Decision) -> list[Candidate]:
    wanted = spec.number_of_clusters or len(ranked)
    chosen: list[Candidate] = []
    counts: dict[str, Counter[str]] = {by: Counter() for by in spec.max_per}
    for candidate in ranked:
        if len(chosen) >= wanted:
            decision.not_selected.append(
                {"cluster": candidate.name, "reason": f"enough clusters ({wanted})"}
            )
            continue
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


def _divide(
    spec: PlacementSpec, chosen: list[Candidate], need: PerReplica, decision: Decision
) -> dict[str, int]:
    if spec.division == "duplicated":
        return {c.name: spec.replicas for c in chosen}
    caps = {}
    for c in chosen:
        fit = 0
        while fit < spec.replicas and _fits(c, need, fit + 1):
            fit += 1
        caps[c.name] = fit
    if spec.division == "static":
        weights = {c.name: Decimal(spec.static_weights.get(c.name, 1)) for c in chosen}
        if chosen and spec.replicas and all(w == 0 for w in weights.values()):
            decision.warnings.append(
                "static weights: every chosen cluster has weight 0, replicas divided equally"
            )
            weights = {name: Decimal(1) for name in weights}
    else:
        weights = {}
        for c in chosen:
            cpu, memory = _room(c, need)
            by_cpu = cpu / need.cpu if need.cpu else Decimal(10**6)
            by_memory = memory / need.memory if need.memory else Decimal(10**6)
            # a cluster weighs at most 10**6 (the most a static weight may be)
            fit = min(by_cpu, by_memory, Decimal(10**6))
            weights[c.name] = fit.to_integral_value(rounding="ROUND_FLOOR")
    if spec.division == "static":
        replicas = webster(spec.replicas, weights, caps)
    else:
        replicas = _steady(spec, weights, caps, {c.name: c.held for c in chosen})
    missing = spec.replicas - sum(replicas.values())
    if missing and chosen:
        decision.unschedulable = missing
        decision.warnings.append(
            f"Unschedulable: {missing} of {spec.replicas} replicas do not fit in the chosen "
            f"clusters (they have room for {sum(caps.values())})"
        )
    return replicas


def _steady(
    spec: PlacementSpec, room: dict[str, Decimal], caps: dict[str, int], held: dict[str, int]
) -> dict[str, int]:
    """Karmada's steady assignment, seat by seat: held replicas (as many as still fit) stay;
    scale down divides the new total by them; scale up divides the increment by the room
    left. Aggregated: over the fewest clusters (held ones first, then most room)."""
    base = {name: min(held[name], int(room[name])) for name in room}
    if sum(base.values()) > spec.replicas:
        target, start, prior = spec.replicas, {}, set()
        weights = {name: Decimal(base[name]) for name in room}
        limits = dict(base)
    else:
        target, start = spec.replicas - sum(base.values()), base
        prior = {name for name in base if base[name]}
        weights = {name: room[name] - base[name] for name in room}
        limits = {name: caps[name] - base[name] for name in room}
    if spec.division == "aggregated":
        order = sorted(weights, key=lambda n: (n not in prior, -weights[n], n))
        taken, holds = set(), Decimal(0)
        for name in order:
            if holds >= target:
                break
            if weights[name] > 0:
                taken.add(name)
                holds += weights[name]
        weights = {n: (w if n in taken else Decimal(0)) for n, w in weights.items()}
    seats = webster(target, weights, limits)
    return {name: start.get(name, 0) + seats[name] for name in room}
