"""Health: conditions from an inventory, and hysteresis of the status (pure logic)."""

from __future__ import annotations

from clusters.choices import ClusterStatus as S
from clusters.health import next_status, observe_inventory
from kube.inventory import Inventory


def _run(start: str, observations: list[S]) -> list[str]:
    status, pending, count, seen = start, "", 0, []
    for observed in observations:
        verdict = next_status(
            current=status, pending_status=pending, pending_count=count, observed=observed
        )
        status, pending, count = verdict.status, verdict.pending_status, verdict.pending_count
        seen.append(str(status))
    return seen


def test_unknown_takes_the_first_observation() -> None:
    assert _run(S.UNKNOWN, [S.READY]) == ["ready"]
    assert _run(S.UNKNOWN, [S.UNREACHABLE]) == ["unreachable"]


def test_a_blip_does_not_flip_the_status() -> None:
    assert (
        _run(S.READY, [S.UNREACHABLE, S.READY, S.UNREACHABLE, S.UNREACHABLE, S.READY])
        == ["ready"] * 5
    )


def test_three_failed_probes_make_unreachable_within_90_seconds_at_30s() -> None:
    # a cluster dying just after a good probe fails the next three probes at +30, +60, +90 s
    assert _run(S.READY, [S.UNREACHABLE] * 3) == ["ready", "ready", "unreachable"]


def test_recovery_and_degradation_need_two_agreeing_observations() -> None:
    assert _run(S.UNREACHABLE, [S.READY, S.READY]) == ["unreachable", "ready"]
    assert _run(S.READY, [S.DEGRADED, S.DEGRADED]) == ["ready", "degraded"]
    # a different bad observation restarts the count
    assert _run(S.READY, [S.DEGRADED, S.UNREACHABLE, S.DEGRADED]) == ["ready"] * 3


def _node(name: str, ready: bool) -> dict[str, object]:
    resources = {"cpu_millis": 4000, "memory_bytes": 1 << 34, "gpu": 0, "pods": 110}
    return {"name": name, "ready": ready, "capacity": resources, "allocatable": resources}


def test_inventory_observations() -> None:
    healthy = Inventory(nodes=[_node("a", True)], pods_by_phase={"Running": 10})
    assert observe_inventory(healthy).status == S.READY

    node_down = Inventory(nodes=[_node("a", True), _node("b", False)])
    observation = observe_inventory(node_down)
    assert observation.status == S.DEGRADED
    assert observation.reason == "NodesNotReady"
    assert "1 of 2 nodes ready; not ready: b" in observation.message

    assert observe_inventory(Inventory()).reason == "NoNodes"

    crashing = Inventory(
        nodes=[_node("a", True)], pods_by_phase={"Running": 8}, pods_crashlooping=2
    )
    assert observe_inventory(crashing).reason == "PodsFailing"
