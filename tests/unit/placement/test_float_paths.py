"""The scheduler's fast paths compute in floats and fall back to exact arithmetic where
float rounding could change an answer (issue 20, Speed). Each case here sits exactly on
such an edge, where the naive float answer is wrong; the expected answers are worked out by
hand from the definitions (docs/coming-from-karmada-ocm.md)."""

from __future__ import annotations

from decimal import Decimal as D

from applications.capacity import fittings
from applications.scheduler import Candidate, PerReplica, PlacementSpec, schedule
from tests.unit.placement.test_karmada_ocm_cases import cluster


def test_a_room_that_divides_exactly_fits_every_replica() -> None:
    # 0.3 CPU of room at 0.1 CPU a replica: 0.3 / 0.1 = 3 replicas. In floats
    # 0.3 / 0.1 = 2.9999999999999996, whose floor (2) would lose one.
    need = PerReplica(cpu=D("0.1"), memory=D(0))
    small = cluster("small", allocatable_cpu=D("0.3"))
    assert fittings([small], need, 1000) == [3]
    # given 5 replicas divided by capacity over it alone
    decision = schedule(PlacementSpec(replicas=5, division="capacity"), [small], need)
    # then 3 fit and 5 - 3 = 2 are unschedulable
    assert [(c["cluster"], c["replicas"]) for c in decision.chosen] == [("small", 3)]
    assert decision.unschedulable == 2


def loaded(name: str, requested: D) -> Candidate:
    """A cluster of 8000 CPU and 8000 bytes with `requested` of each requested."""
    return cluster(
        name,
        allocatable_cpu=D(8000),
        allocatable_memory=D(8000),
        requested_cpu=requested,
        requested_memory=requested,
    )


def test_a_score_on_a_half_hundredth_rounds_half_to_even() -> None:
    # least_allocated over three clusters: empty (1), full (0), and one with 4001 of 8000
    # CPU and memory free: (4001/8000 + 4001/8000) / 2 = 0.500125. Normalized over
    # 0..1: 0.500125 x 200 - 100 = 0.025 exactly, shown to 2 decimals half to even: 0.02.
    # (In floats 0.500125 x 200 - 100 = 0.025000000000005684, which rounds to 0.03.)
    need = PerReplica(cpu=D(0), memory=D(0))
    clusters = [loaded("empty", D(0)), loaded("full", D(8000)), loaded("half", D(3999))]
    decision = schedule(PlacementSpec(), clusters, need)
    shown = {c["cluster"]: (c["score"], c["scores"]["least_allocated"]) for c in decision.chosen}
    assert shown == {"empty": (100.0, 100.0), "half": (0.02, 0.02), "full": (-100.0, -100.0)}
    assert [c["cluster"] for c in decision.chosen] == ["empty", "half", "full"]
