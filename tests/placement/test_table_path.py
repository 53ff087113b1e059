"""The candidate cache's path to a decision (issue 20, Speed): the team's table built once,
then changed in arrays as collection reports new requested figures (`Table.with_usage`),
clusters reloaded (`Table.replaced`) and the application's current clusters marked
(`Table.with_current`). Whatever figures the table went through before, a decision over it
must be the hand-worked one for the figures it holds now: hypothesis picks the earlier
figures and the order of the updates; the expected answers are worked out in comments."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from applications.scheduler import Candidate, PerReplica, PlacementSpec, schedule
from applications.table import Table
from tests.unit.placement.test_karmada_ocm_cases import GIB, cluster

ONE_CPU = PerReplica(cpu=D(1), memory=D(0))


def _loaded(name: str, cpu: int, used_millis: int, **fields: Any) -> Candidate:
    """A cluster as the cache loads it: CPU in millis / 1000, 64 GiB of memory."""
    return cluster(
        name,
        allocatable_cpu=D(cpu * 1000) / 1000,
        requested_cpu=D(used_millis) / 1000,
        requested_memory=D(used_millis) * GIB / 1000,
        **fields,
    )


# Each case: the clusters as they are now (name, CPU, requested CPU millis, current and
# replicas held), the spec, and the hand-worked replicas per chosen cluster (rank order)
# with the unschedulable count.
CASES: list[tuple[list[tuple[str, int, int, int | None]], PlacementSpec, dict[str, int], int]] = [
    # Bug 2: 3 clusters of 4 CPU with 1 requested: room for 3 each at 1 CPU a replica.
    # 12 divided by capacity: 3 / 3 / 3, and 12 - 9 = 3 unschedulable.
    (
        [("a", 4, 1000, None), ("b", 4, 1000, None), ("c", 4, 1000, None)],
        PlacementSpec(replicas=12, division="capacity"),
        {"a": 3, "b": 3, "c": 3},
        3,
    ),
    # Bug 1: 4 CPU with 3 requested, all by this application's 3 replicas there: its room
    # is 4 - 3 + 3 = 4 >= 3, so it stays with 3 (another application would not fit).
    ([("a", 4, 3000, 3)], PlacementSpec(replicas=3), {"a": 3}, 0),
    # Room 2, 3 and 5 (of 8 CPU with 6, 5 and 3 requested): 10 replicas by capacity take
    # exactly 2 / 3 / 5. Ranked by least allocated: c (5/8 free), b (3/8), a (2/8).
    (
        [("a", 8, 6000, None), ("b", 8, 5000, None), ("c", 8, 3000, None)],
        PlacementSpec(replicas=10, division="capacity"),
        {"c": 5, "b": 3, "a": 2},
        0,
    ),
    # One cluster wanted, by least allocated: a is 1/4 used (3/4 free), b 3/4 used: a.
    (
        [("a", 4, 1000, None), ("b", 4, 3000, None)],
        PlacementSpec(number_of_clusters=1),
        {"a": 1},
        0,
    ),
]


def _now(spec: tuple[str, int, int, int | None]) -> Candidate:
    name, cpu, used, held = spec
    if held is None:
        return _loaded(name, cpu, used)
    return _loaded(name, cpu, used, current=True, held=held)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_table_path_gives_the_hand_worked_decisions(data: st.DataObject) -> None:
    clusters, spec, expected, unschedulable = data.draw(st.sampled_from(CASES))
    # earlier requested figures of each cluster (what the table was first built with)
    earlier = [
        _loaded(name, cpu, data.draw(st.integers(0, cpu * 1000))) for name, cpu, _, _ in clusters
    ]
    table = Table.of(earlier)
    # collection's reports, in batches in a drawn order, some clusters reloaded whole
    order = data.draw(st.permutations(range(len(clusters))))
    for position in order:
        name, cpu, used, _ = clusters[position]
        if data.draw(st.booleans()):
            table = table.with_usage([position], [used], [used * 2**30 // 1000])
        else:
            table = table.replaced([position], [_loaded(name, cpu, used)])
        if data.draw(st.booleans()):
            table.candidate(position)  # read between updates (derived then)
    current = [i for i, c in enumerate(clusters) if c[3] is not None]
    view = table.with_current(current, [_now(clusters[i]) for i in current])

    decision = schedule(spec, view, ONE_CPU)

    assert {c["cluster"]: c["replicas"] for c in decision.chosen} == expected
    assert [c["cluster"] for c in decision.chosen] == list(expected)
    assert decision.unschedulable == unschedulable
    # and the candidates the table derives are those the figures give
    assert [view.candidate(i) for i in range(len(clusters))] == [_now(c) for c in clusters]
