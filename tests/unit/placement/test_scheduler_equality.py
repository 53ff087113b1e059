"""The scheduler ranks in floats with a proven error bound and falls back to Decimals where
floats cannot decide: its decisions must be exactly those of the all-Decimal scheduler it
replaced (tests/unit/placement/reference_scheduler.py), ties and near-ties included."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal as D
from typing import Any

import pytest

from applications.scheduler import Candidate, PerReplica, PlacementSpec, schedule
from tests.unit.placement import reference_scheduler as reference

GIB = 2**30
LABELS = [{"env": e, "tier": t} for e in ("prod", "staging", "dev") for t in ("web", "batch")]
TAINTS = [
    [],
    [],
    [{"key": "gpu", "value": "true", "effect": "NoSelect"}],
    [{"key": "spot", "value": "", "effect": "PreferNoSelect"}],
    [{"key": "drain", "value": "soon", "effect": "NoSelectIfNew"}],
]
TOLERATIONS: tuple[list[dict[str, str]], ...] = (
    [],
    [{"key": "gpu"}],
    [{"key": "spot"}],
    [{"key": "gpu", "operator": "Equal", "value": "true"}],
    [{"key": "gpu", "operator": "Equal", "value": "false"}],
    [{"operator": "Exists", "effect": "NoSelectIfNew"}],
    [{"operator": "Exists"}],
)


def _candidate(rng: random.Random, index: int, ties: bool) -> Candidate:
    # `ties`: few distinct capacities and prices, so many clusters score exactly alike.
    cpu = D(rng.choice((8, 16)) if ties else rng.randrange(1, 64))
    memory = D(rng.choice((32, 64)) * GIB if ties else rng.randrange(1, 256) * GIB)
    used = D(rng.choice((0, 2)) if ties else rng.randrange(0, 1000)) / 1000
    priced = rng.random() < 0.8
    current = rng.random() < 0.1
    return Candidate(
        # names that are prefixes of others ("c-12-1", "c-12-10") test the name tie-break
        name=f"c-{rng.randrange(10**6):06d}-{index}" if not ties else f"c-{index % 7}-{index}",
        labels=dict(rng.choice(LABELS)),
        provider=rng.choice(("aws", "gcp")),
        region=rng.choice(("eu", "us", "ap")),
        zone="",
        environment="prod",
        version="v1.30.1",
        status=rng.choice(("ready", "ready", "ready", "degraded", "unreachable")),
        taints=list(rng.choice(TAINTS)),
        allocatable_cpu=cpu,
        allocatable_memory=memory,
        requested_cpu=(cpu * used).quantize(D("0.001")),
        requested_memory=D(int(memory * used)),
        cpu_price=D(rng.choice(("0.031", "0.04")) if ties else f"0.0{rng.randrange(10, 99)}")
        if priced
        else None,
        ram_price=D(rng.choice(("0.004", "0.005")) if ties else f"0.00{rng.randrange(1, 9)}")
        if priced
        else None,
        current=current,
        held=rng.choice((0, 1, 5, 30)) if current else 0,
    )


def _spec(rng: random.Random, count: int) -> PlacementSpec:
    names = [
        "least_allocated",
        "resource_balance",
        "balance",
        "steady",
        "cheapest",
        "allocatable_cpu",
        "allocatable_memory",
    ]
    chosen = rng.sample(names, rng.randrange(0, 6))
    return PlacementSpec(
        selector=rng.choice(("", "env in (prod,staging)", "tier!=batch")),
        tolerations=rng.choice(TOLERATIONS),
        prioritizers={name: rng.choice((-3, -1, 0, 1, 2, 10)) for name in chosen},
        number_of_clusters=rng.choice((None, 1, 3, count // 4 or 1)),
        max_per=rng.choice(({}, {"region": 2}, {"provider": 3})),
        min_distinct=rng.choice(({}, {"region": 3})),
        replicas=rng.randrange(0, 40),
        division=rng.choice(("duplicated", "static", "capacity", "aggregated")),
        static_weights=rng.choice(
            ({}, {"c-1-1": 0}, {f"c-{i}-{i}": rng.choice((0, 0, 1, 3)) for i in range(7)})
        ),
    )


def _reference(spec: PlacementSpec, candidates: list[Candidate], need: PerReplica) -> Any:
    init = [f.name for f in dataclasses.fields(Candidate) if f.init]
    return reference.schedule(
        reference.PlacementSpec(**dataclasses.asdict(spec)),
        [reference.Candidate(**{name: getattr(c, name) for name in init}) for c in candidates],
        reference.PerReplica(cpu=need.cpu, memory=need.memory),
    ).as_json()


@pytest.mark.parametrize("seed", range(150))
def test_decisions_equal_the_reference_scheduler(seed: int) -> None:
    rng = random.Random(seed)
    ties = seed % 3 == 0
    count = rng.choice((1, 5, 40, 200))
    candidates = [_candidate(rng, index, ties) for index in range(count)]
    need = PerReplica(
        cpu=D(rng.choice(("0.25", "0.1", "1"))), memory=D(rng.choice((128, 256)) * 2**20)
    )
    for _ in range(4):
        spec = _spec(rng, count)
        assert schedule(spec, candidates, need).as_json() == _reference(spec, candidates, need)


def _summary_of(every: dict[str, Any], first: int) -> dict[str, Any]:
    """The summary of a decision, from its every exclusion (what `summarized` returned
    when the scheduler wrote every entry)."""
    summary: dict[str, Any] = {
        "chosen": every["chosen"],
        "warnings": every["warnings"],
        "unschedulable": every["unschedulable"],
    }
    counts: dict[str, dict[str, int]] = {}
    for part, key in (("excluded", "predicate"), ("not_selected", "reason")):
        counted: dict[str, int] = {}
        summary[part] = []
        for entry in every[part]:
            counted[entry[key]] = counted.get(entry[key], 0) + 1
            if counted[entry[key]] <= first:
                summary[part].append(entry)
        counts[part] = counted
    complete = all(len(summary[part]) == len(every[part]) for part in counts)
    summary["summary"] = {**counts, "complete": complete}
    return summary


@pytest.mark.parametrize("seed", range(40))
def test_summaries_equal_the_summary_of_every_entry(seed: int) -> None:
    # given: decisions explained lazily, read as summaries first and whole afterwards
    rng = random.Random(1000 + seed)
    candidates = [_candidate(rng, index, ties=seed % 2 == 0) for index in range(200)]
    need = PerReplica(cpu=D("0.25"), memory=D(256 * 2**20))
    for first in (1, 3, 10):
        spec = _spec(rng, len(candidates))
        decision = schedule(spec, candidates, need)
        # when
        summary = decision.summarized(first)
        every = decision.as_json()
        # then
        assert every == _reference(spec, candidates, need)
        assert summary == _summary_of(every, first)
        assert decision.summarized(None)["excluded"] == every["excluded"]


def test_near_ties_below_float_precision_are_ranked_exactly() -> None:
    # Requested CPU differing in the 20th digit: floats see one value, Decimals two.
    base: dict[str, Any] = {
        "labels": {},
        "provider": "aws",
        "region": "eu",
        "zone": "",
        "environment": "",
        "version": "",
        "status": "ready",
        "taints": [],
        "allocatable_cpu": D(3),
        "allocatable_memory": D(GIB),
        "requested_memory": D(0),
    }
    candidates = [
        Candidate(name=f"n{i}", requested_cpu=D(1) + D(i) / D(10**20), **base) for i in range(5)
    ][::-1]
    need = PerReplica(cpu=D("0.1"), memory=D(1))
    for prioritizers in ({"least_allocated": 1}, {"resource_balance": -2, "least_allocated": 1}):
        spec = PlacementSpec(prioritizers=prioritizers, number_of_clusters=2)
        decision = schedule(spec, candidates, need)
        assert decision.as_json() == _reference(spec, candidates, need)
    assert [c["cluster"] for c in schedule(PlacementSpec(), candidates, need).chosen][:2] == [
        "n0",
        "n1",
    ]


def test_new_requested_figures_derive_as_a_new_candidate_would() -> None:
    rng = random.Random(7)
    for index in range(50):
        candidate = _candidate(rng, index, ties=False)
        cpu, memory = D(rng.randrange(0, 9000)) / 1000, D(rng.randrange(0, 64 * GIB))
        updated = candidate.with_requested(cpu, memory)
        fresh = dataclasses.replace(candidate, requested_cpu=cpu, requested_memory=memory)
        assert updated == fresh
        assert {f.name: getattr(updated, f.name) for f in dataclasses.fields(Candidate)} == {
            f.name: getattr(fresh, f.name) for f in dataclasses.fields(Candidate)
        }
