"""Placement cases in the style of Karmada's replica division and OCM's taints and
tolerations, each with its answer worked out by hand in the comments (issue 20). Every one
of the issue's bugs has a case here that failed before the fix."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from applications.scheduler import (
    NO_REPLICAS,
    Candidate,
    PerReplica,
    PlacementSpec,
    schedule,
    webster,
)
from applications.spec import placement_spec

GIB = D(2**30)
ONE_CPU = PerReplica(cpu=D(1), memory=D(0))


def cluster(name: str, cpu: int = 16, **fields: Any) -> Candidate:
    base: dict[str, Any] = {
        "labels": {},
        "provider": "aws",
        "region": "eu",
        "zone": "",
        "environment": "prod",
        "version": "v1.30.1",
        "status": "ready",
        "taints": [],
        "allocatable_cpu": D(cpu),
        "allocatable_memory": 64 * GIB,
        "requested_cpu": D(0),
        "requested_memory": D(0),
    }
    return Candidate(name=name, **{**base, **fields})


def replicas(spec: PlacementSpec, candidates: list[Candidate], need: PerReplica = ONE_CPU) -> Any:
    return {c["cluster"]: c["replicas"] for c in schedule(spec, candidates, need).chosen}


# --- 1. an application's own pods do not evict it --------------------------------------


def test_own_replicas_are_room_not_competition() -> None:
    # 4 CPU, 3 requested: the application's own 3 replicas at 1 CPU. Room for it:
    # 4 - 3 + min(3 x 1, 3) = 4 >= 3, so it stays (it used to be excluded: 1 free < 3).
    deployed = cluster("a", cpu=4, requested_cpu=D(3), current=True, held=3)
    assert replicas(PlacementSpec(replicas=3), [deployed]) == {"a": 3}
    # Another application asking the same sees 1 CPU free: excluded by CapacityFits.
    other = cluster("a", cpu=4, requested_cpu=D(3))
    decision = schedule(PlacementSpec(replicas=3), [other], ONE_CPU)
    assert decision.chosen == [] and decision.excluded[0]["predicate"] == "CapacityFits"
    # Never more given back than the cluster reports requested (pods not collected yet):
    # 4 - 1 + min(3, 1) = 4 with 1 requested -> fits 3; 2 requested by others and held 3
    # with 2 requested in all -> 4 - 2 + 2 = 4, still fits.
    early = cluster("a", cpu=4, requested_cpu=D(1), current=True, held=3)
    assert replicas(PlacementSpec(replicas=3), [early]) == {"a": 3}


def test_capacity_division_counts_own_replicas_so_it_does_not_drift() -> None:
    # a: 4 CPU with the app's 3 replicas (3 requested); b: 4 CPU idle. Room 4 and 4, so a
    # keeps its 3 (without the add-back a had room for 1 and lost 2). Scaling 3 -> 6 divides
    # the 3 new ones by the room left, a 1 : b 4, seat by seat: b (4/1), b (4/3 > a 1/1),
    # a (1/1 > b 4/5) -> a 3 + 1, b 2.
    candidates = [cluster("a", cpu=4, requested_cpu=D(3), current=True, held=3), cluster("b", 4)]
    assert replicas(PlacementSpec(replicas=3, division="capacity"), candidates) == {"a": 3}
    spec = PlacementSpec(replicas=6, division="capacity")
    assert replicas(spec, candidates) == {"a": 4, "b": 2}


# --- 2. divided replicas never exceed a cluster's room -----------------------------------


def test_division_never_overcommits_and_reports_the_remainder() -> None:
    # Three clusters with room for 3 each (3 CPU, 1 CPU per replica), 12 replicas, equal
    # weights: 4/4/4 used to be returned silently. Now 3/3/3 and 3 unschedulable.
    candidates = [cluster(name, cpu=3) for name in ("a", "b", "c")]
    for division in ("static", "capacity"):
        decision = schedule(PlacementSpec(replicas=12, division=division), candidates, ONE_CPU)
        assert {c["cluster"]: c["replicas"] for c in decision.chosen} == {"a": 3, "b": 3, "c": 3}
        assert decision.unschedulable == 3
        assert decision.warnings == [
            "Unschedulable: 3 of 12 replicas do not fit in the chosen clusters "
            "(they have room for 9)"
        ]
        assert decision.as_json()["unschedulable"] == 3


def test_a_capped_cluster_passes_its_seats_on_in_webster_order() -> None:
    # Weights a:3 b:1 c:1, 10 replicas, a has room for 4. Seat by seat (quotient w/(2s+1)):
    # a 3, then a 1 / b 1 / c 1 tie (larger weight, then name): a, b, c; a 3/5, a 3/7 -> a
    # is full at 4; b 1/3, c 1/3, b 1/5, c 1/5. Result a 4, b 3, c 3.
    candidates = [cluster("a", cpu=4), cluster("b", cpu=10), cluster("c", cpu=10)]
    spec = PlacementSpec(replicas=10, division="static", static_weights={"a": 3, "b": 1, "c": 1})
    assert replicas(spec, candidates) == {"a": 4, "b": 3, "c": 3}


# --- 3. all static weights zero ----------------------------------------------------------


def test_all_zero_static_weights_divide_equally_as_karmada_does() -> None:
    # Karmada: a weight list summing to 0 gives every cluster weight 1. 5 over 1:1:
    # a 1 / b 1 tie -> a, then b, a 1/3 / b 1/3 -> a, b, then a 1/5 -> a 3, b 2 (Karmada's
    # own example of 5 replicas at 1:1 gives 3 and 2 as well).
    spec = PlacementSpec(replicas=5, division="static", static_weights={"a": 0, "b": 0})
    decision = schedule(spec, [cluster("a"), cluster("b")], ONE_CPU)
    assert {c["cluster"]: c["replicas"] for c in decision.chosen} == {"a": 3, "b": 2}
    assert decision.warnings == [
        "static weights: every chosen cluster has weight 0, replicas divided equally"
    ]
    # one zero among others: that cluster gets nothing
    # one zero among others: that cluster gets nothing, so it leaves the decision (Karmada
    # drops clusters with 0 replicas of a divided workload) and says why
    partial = PlacementSpec(replicas=5, division="static", static_weights={"a": 0})
    decision = schedule(partial, [cluster("a"), cluster("b")], ONE_CPU)
    assert {c["cluster"]: c["replicas"] for c in decision.chosen} == {"b": 5}
    assert decision.not_selected == [{"cluster": "a", "reason": NO_REPLICAS}]


# --- 4. ties follow the ranking's name order -----------------------------------------------


def test_ties_go_to_the_name_first_in_the_rankings_order() -> None:
    # "prod" < "prod-eu" in the ranking (str order): the single replica goes to prod.
    assert webster(1, {"prod-eu": 1, "prod": 1}) == {"prod": 1, "prod-eu": 0}
    spec = PlacementSpec(replicas=1, division="static")
    assert replicas(spec, [cluster("prod-eu"), cluster("prod")]) == {"prod": 1}  # prod-eu: none
    # c1..c10000 by name: c1, c10, c100, c1000, c10000, c1001, ... -> 3 replicas go to the
    # first three: c1, c10, c100 (they used to go to c1000, c10000, c1001).
    many = [cluster(f"c{i}", cpu=1) for i in range(1, 10001)]
    given = {
        name
        for name, count in replicas(PlacementSpec(replicas=3, division="static"), many).items()
        if count
    }
    assert given == {"c1", "c10", "c100"}


# --- 5. large counts divide without seat-by-seat work ------------------------------------


def test_large_counts_divide_exactly() -> None:
    # 100,000 over 10,000 equal clusters: 10 each; 100,003: the 3 extra seats (quotient
    # 1/21 everywhere, a tie) go to the first three names.
    names = {f"n{i:05d}": 1 for i in range(10_000)}
    seats = webster(100_000, names)
    assert set(seats.values()) == {10}
    seats = webster(100_003, names)
    assert [n for n, s in seats.items() if s == 11] == ["n00000", "n00001", "n00002"]
    # 1,000,000 over 1:2: shares 333,333.3 and 666,666.7 round to 333,333 and 666,667.
    assert webster(1_000_000, {"a": 1, "b": 2}) == {"a": 333_333, "b": 666_667}
    # with caps: b holds at most 500,000, a takes the rest it can (cap 600,000): 500,000 +
    # 500,000; nothing else fits -> 1,000,000 placed of 1,000,000.
    capped = webster(1_000_000, {"a": 1, "b": 2}, {"a": 600_000, "b": 500_000})
    assert capped == {"a": 500_000, "b": 500_000}


# --- Karmada-style weights and remainders --------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        # 6 over 1:2 -> exactly 2 and 4
        (6, {"member1": 1, "member2": 2}, {"member1": 2, "member2": 4}),
        # 7 over 53000:24000:23000 (Sainte-Laguë's textbook case): 3, 2, 2
        (7, {"a": 53000, "b": 24000, "c": 23000}, {"a": 3, "b": 2, "c": 2}),
        # 1 over 1:1:1 -> tie, the first name
        (1, {"x": 1, "y": 1, "z": 1}, {"x": 1, "y": 0, "z": 0}),
        # 4 over 1:1:1 -> 1 each, then the 4th seat (1/3 everywhere) to the first name
        (4, {"x": 1, "y": 1, "z": 1}, {"x": 2, "y": 1, "z": 1}),
        # 10 over 1:2:3 -> quotients give 2, 3, 5
        (10, {"x": 1, "y": 2, "z": 3}, {"x": 2, "y": 3, "z": 5}),
    ],
)
def test_weighted_division(total: int, weights: dict[str, int], expected: dict[str, int]) -> None:
    assert webster(total, weights) == expected


# --- OCM-style taints and tolerations ----------------------------------------------------

GPU = [{"key": "gpu", "value": "true", "effect": "NoSelect"}]


@pytest.mark.parametrize(
    ("tolerations", "selected"),
    [
        ([], False),
        ([{"key": "gpu", "operator": "Equal", "value": "true"}], True),
        ([{"key": "gpu", "operator": "Equal", "value": "false"}], False),  # value differs
        ([{"key": "gpu", "operator": "Equal"}], False),  # "" != "true"
        ([{"key": "gpu", "operator": "Exists"}], True),  # any value
        ([{"operator": "Exists"}], True),  # empty key + Exists: every taint
        ([{"key": "gpu", "operator": "Exists", "effect": "PreferNoSelect"}], False),  # effect
        ([{"key": "gpu", "operator": "Exists", "effect": "NoSelect"}], True),
        ([{"key": "gpu"}], True),  # no operator, no value: Exists (as before operators)
        ([{"key": "gpu", "value": "true"}], True),  # no operator with a value: Equal
    ],
)
def test_toleration_operators_and_effects(
    tolerations: list[dict[str, str]], selected: bool
) -> None:
    spec = placement_spec({"tolerations": tolerations})
    decision = schedule(spec, [cluster("gpu", taints=GPU)], ONE_CPU)
    assert bool(decision.chosen) is selected


def test_no_select_if_new_keeps_existing_placements_only() -> None:
    # OCM: a NoSelectIfNew taint stops new placements; one already there stays.
    drain = [{"key": "drain", "value": "", "effect": "NoSelectIfNew"}]
    spec = PlacementSpec()
    new = schedule(spec, [cluster("x", taints=drain)], ONE_CPU)
    assert new.chosen == [] and new.excluded[0]["predicate"] == "TaintToleration"
    assert "drain=:NoSelectIfNew is not tolerated" in new.excluded[0]["reason"]
    existing = schedule(spec, [cluster("x", taints=drain, current=True, held=1)], ONE_CPU)
    assert [c["cluster"] for c in existing.chosen] == ["x"]
    tolerated = PlacementSpec(tolerations=[{"key": "drain", "operator": "Exists"}])
    assert schedule(tolerated, [cluster("x", taints=drain)], ONE_CPU).chosen


# --- the spec refuses what it would otherwise ignore --------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"selectr": "env=prod"}, "placement", "'selectr' (did you mean 'selector'?)"),
        ({"numberOfClusters": 3}, "placement", "did you mean 'number_of_clusters'?"),
        ({"replicas": 1_000_001}, "replicas", "from 0 to 1,000,000"),
        ({"static_weights": {"a": 10**7}}, "static_weights", "from 0 to 1,000,000"),
        ({"tolerations": [{"key": "a", "operator": "In"}]}, "tolerations", "Equal, Exists"),
        ({"tolerations": [{"key": "a", "efect": "NoSelect"}]}, "tolerations", "'effect'"),
        ({"tolerations": [{"value": "x"}]}, "tolerations", "empty key needs operator Exists"),
        ({"tolerations": [{"key": "a", "effect": "NoExecute"}]}, "tolerations", "NoSelectIfNew"),
    ],
)
def test_bad_specs_name_the_field(data: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        placement_spec(data)
    assert text in raised.value.message_dict[field][0]


def test_the_largest_allowed_spec_is_accepted() -> None:
    spec = placement_spec({"replicas": 1_000_000, "static_weights": {"a": 0, "b": 1_000_000}})
    assert spec.replicas == 1_000_000


# --- stable division when scaling (Karmada's steady assignment) --------------------------


def holding(name: str, cpu: int, held: int, others: int = 0) -> Candidate:
    """A cluster of `cpu` CPUs running `held` replicas of the app (1 CPU each) and `others`
    CPUs of other workloads."""
    return cluster(name, cpu=cpu, requested_cpu=D(held + others), current=held > 0, held=held)


@pytest.mark.parametrize(
    ("division", "candidates", "total", "expected", "unschedulable"),
    [
        # Scale up 6 -> 8, everything on a (room 8 each). From scratch 8:8 would give 4/4 and
        # move 2 replicas off a. Steady: a keeps 6; the 2 new ones go by room left, a 2 : b 8:
        # b (8/1), b (8/3 = 2.67 > a 2/1) -> a 6, b 2.
        ("capacity", [holding("a", 8, 6), holding("b", 8, 0)], 8, {"a": 6, "b": 2}, 0),
        # Scale up 6 -> 12 over a, b holding 3 each and c new (10 CPU each): room left 7:7:10,
        # 6 seats: c 10, a 7, b 7 (tie: name), c 10/3, a 7/3, b 7/3 -> 5 / 5 / 2.
        (
            "capacity",
            [holding("a", 10, 3), holding("b", 10, 3), holding("c", 10, 0)],
            12,
            {"a": 5, "b": 5, "c": 2},
            0,
        ),
        # Scale down 8 -> 7 from a 6, b 2 (room 8 each). From scratch 8:8 gives 4/3 and b
        # would *gain* one while scaling down. Steady: 7 by the current shares 6:2, seat by
        # seat: a 6, a 2 = b 2 (tie: larger weight a), b 2, a 1.2, a 0.86, a 0.67 = b 0.67
        # (tie: a), b 0.67 -> a 5, b 2: only a loses one.
        ("capacity", [holding("a", 8, 6), holding("b", 8, 2)], 7, {"a": 5, "b": 2}, 0),
        # Scale down 8 -> 4 from a 6, b 2: a 6, a 2 = b 2 (a), b 2, a 1.2 -> a 3, b 1 (the
        # shares 3:1 of 6:2, exactly).
        ("capacity", [holding("a", 8, 6), holding("b", 8, 2)], 4, {"a": 3, "b": 1}, 0),
        # Scale down 10 -> 5 from a 9, b 1: a 9, a 3, a 1.8, a 1.29, then a 9/9 = b 1/1 (tie:
        # larger weight a) -> a 5, b 0: b's share drops to 0 and it leaves the decision.
        ("capacity", [holding("a", 10, 9), holding("b", 10, 1)], 5, {"a": 5}, 0),
        # Capacity still bounds: scale up 2 -> 8, a full (2 CPU, holds 2), b has room for 3:
        # a 2, b 3, and 3 replicas fit nowhere.
        ("capacity", [holding("a", 2, 2), holding("b", 3, 0)], 8, {"a": 2, "b": 3}, 3),
        # Room shrank under what a holds: a holds 5 but 3 CPU and 3 requested gives room
        # 3 - 3 + min(5, 3) = 3; it keeps 3, the 2 that no longer fit move to b (room 10).
        ("capacity", [holding("a", 3, 5, 0), holding("b", 10, 0)], 5, {"a": 3, "b": 2}, 0),
        # Static weights divide from scratch: Webster is house-monotone, so 1:1 goes 5 -> 3/2,
        # 6 -> 3/3, 7 -> 4/3, 4 -> 2/2: scaling only ever adds or only removes replicas.
        ("static", [holding("a", 16, 3), holding("b", 16, 2)], 6, {"a": 3, "b": 3}, 0),
        ("static", [holding("a", 16, 3), holding("b", 16, 3)], 7, {"a": 4, "b": 3}, 0),
        ("static", [holding("a", 16, 4), holding("b", 16, 3)], 4, {"a": 2, "b": 2}, 0),
    ],
)
def test_scaling_keeps_what_clusters_hold(
    division: str,
    candidates: list[Candidate],
    total: int,
    expected: dict[str, int],
    unschedulable: int,
) -> None:
    decision = schedule(PlacementSpec(replicas=total, division=division), candidates, ONE_CPU)
    assert {c["cluster"]: c["replicas"] for c in decision.chosen} == expected
    assert decision.unschedulable == unschedulable
    left = {c.name for c in candidates} - set(expected)
    assert {e["cluster"] for e in decision.not_selected} == left
    assert all(e["reason"] == NO_REPLICAS for e in decision.not_selected)


def test_unchanged_replicas_keep_the_assignment_when_room_changes() -> None:
    # a holds 6, b holds 2; b's other workloads left (room 8 -> 16). Karmada keeps a steady
    # assignment when the total is unchanged; a fresh capacity division would move 2 to b.
    candidates = [holding("a", 8, 6), holding("b", 16, 2)]
    spec = PlacementSpec(replicas=8, division="capacity")
    assert replicas(spec, candidates) == {"a": 6, "b": 2}
    # the first decision (nothing held) divides by room: 8 over 8:16 -> a 8/3 > ... shares
    # 2.67 / 5.33 -> b 16, a 8, b 5.33, b 3.2, a 2.67, b 2.29, b 1.78, a 1.6 -> a 3, b 5
    fresh = [cluster("a", cpu=8), cluster("b", cpu=16)]
    assert replicas(spec, fresh) == {"a": 3, "b": 5}


# --- aggregated division (Karmada's Aggregated) ------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "total", "expected", "unschedulable"),
    [
        # Room a 4, b 10, c 6; 8 replicas: the largest, b, holds them alone -> b 8.
        ([cluster("a", 4), cluster("b", 10), cluster("c", 6)], 8, {"b": 8}, 0),
        # 12 replicas: b (10) is not enough, b + c (16) is; 12 over 10:6 seat by seat:
        # b 10, c 6, b 3.33, b 2, c 2 (tie after b: larger weight first), b 1.43, c 1.2,
        # b 1.11, b 0.91, c 0.86, b 0.77, b 0.667 = c 0.667 (tie: b) -> b 8, c 4; a leaves.
        ([cluster("a", 4), cluster("b", 10), cluster("c", 6)], 12, {"b": 8, "c": 4}, 0),
        # Equal room: ties by name -> a alone.
        ([cluster("b", 5), cluster("a", 5)], 5, {"a": 5}, 0),
        # Not enough anywhere: every cluster full, the rest unschedulable.
        ([cluster("a", 2), cluster("b", 3)], 7, {"a": 2, "b": 3}, 2),
        # Scale up 2 -> 6 with a holding 2 (4 CPU, room left 2) and b idle (room 10): the
        # holder comes first, a (2) is not enough, a + b are; 4 new over 2:10: b 10, b 3.33,
        # b 2 = a 2 (tie: larger weight b), a 2 -> a 2 + 1, b 3. (Without the preference b
        # alone would hold the 4 new ones.)
        ([holding("a", 4, 2), holding("b", 10, 0)], 6, {"a": 3, "b": 3}, 0),
        # Scale down 10 -> 8 from a 6, b 3, c 1: the largest holders that hold 8 are a + b
        # (6 + 3); 8 over 6:3: a 6, b 3, a 2, a 1.2, b 1, a 0.86, a 0.67, b 0.6 -> a 5, b 3,
        # and c leaves.
        ([holding("a", 8, 6), holding("b", 8, 3), holding("c", 8, 1)], 8, {"a": 5, "b": 3}, 0),
    ],
)
def test_aggregated_division(
    candidates: list[Candidate], total: int, expected: dict[str, int], unschedulable: int
) -> None:
    spec = placement_spec({"replicas": total, "division": "aggregated"})
    decision = schedule(spec, candidates, ONE_CPU)
    assert {c["cluster"]: c["replicas"] for c in decision.chosen} == expected
    assert decision.unschedulable == unschedulable


def test_zero_replicas_keep_every_chosen_cluster() -> None:
    # Nothing to divide: Karmada places a workload without replicas on every cluster.
    spec = PlacementSpec(replicas=0, division="aggregated")
    assert replicas(spec, [cluster("a"), cluster("b")]) == {"a": 0, "b": 0}


# --- prioritizers under OCM's names ----------------------------------------------------------


def test_ocm_allocatable_prioritizers_score_by_allocatable() -> None:
    # OCM's ResourceAllocatableCPU: most allocatable CPU 100, least -100, linear between
    # (Keelson's normalization): 8, 16, 32 CPU -> -100, (16-8)/(32-8)*200-100 = -33.33, 100.
    # Requested CPU does not count (a busy big cluster still ranks first).
    candidates = [
        cluster("small", cpu=8),
        cluster("mid", cpu=16),
        cluster("big", cpu=32, requested_cpu=D(30)),
    ]
    spec = placement_spec({"prioritizers": {"ResourceAllocatableCPU": 1}})
    assert spec.prioritizers == {"allocatable_cpu": 1}
    chosen = schedule(spec, candidates, PerReplica(cpu=D(0), memory=D(0))).chosen
    assert [(c["cluster"], c["score"]) for c in chosen] == [
        ("big", 100.0),
        ("mid", -33.33),
        ("small", -100.0),
    ]
    # memory: 64 GiB everywhere but b with 128 -> b 100, the others -100
    by_memory = placement_spec({"prioritizers": {"ResourceAllocatableMemory": 2}})
    ranked = schedule(
        by_memory,
        [cluster("a"), cluster("b", allocatable_memory=128 * GIB)],
        PerReplica(cpu=D(0), memory=D(0)),
    ).chosen
    assert [(c["cluster"], c["score"]) for c in ranked] == [("b", 200.0), ("a", -200.0)]


def test_balance_is_resource_balance_with_a_deprecation_warning() -> None:
    # Keelson's old `balance` (CPU against memory requests) is now `resource_balance`: the
    # old name still works, scores alike, and every decision says it is deprecated.
    # a: 1 of 16 CPU and 0 of 64 GiB after one replica -> |1/16 - 0| = 0.0625; b: 8 of 16
    # CPU requested + 1 and 0 GiB -> 9/16: a balances better -> a 100, b -100.
    candidates = [cluster("a"), cluster("b", requested_cpu=D(8))]
    old = schedule(placement_spec({"prioritizers": {"balance": 1}}), candidates, ONE_CPU)
    new = schedule(placement_spec({"prioritizers": {"resource_balance": 1}}), candidates, ONE_CPU)
    assert [(c["cluster"], c["score"]) for c in old.chosen] == [("a", 100.0), ("b", -100.0)]
    assert [(c["cluster"], c["score"]) for c in new.chosen] == [("a", 100.0), ("b", -100.0)]
    assert old.warnings == [
        "prioritizer 'balance' is deprecated: it is 'resource_balance' (CPU against memory "
        "requests), not OCM's Balance; rename it"
    ]
    assert new.warnings == []


@pytest.mark.parametrize(
    ("prioritizers", "text"),
    [
        ({"Balance": 1}, "OCM's Balance spreads across placements"),
        ({"Steady": 1}, "OCM's Steady scores 100 and 0"),
        ({"ResourceAllocatableCPU": 1, "allocatable_cpu": 2}, "'allocatable_cpu' is given twice"),
        ({"ResourceAllocatableCPU": 11}, "weights from -10 to 10"),
    ],
)
def test_misleading_ocm_prioritizer_names_are_refused(
    prioritizers: dict[str, int], text: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        placement_spec({"prioritizers": prioritizers})
    assert text in raised.value.message_dict["prioritizers"][0]
