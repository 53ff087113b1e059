"""OpenCost-style allocation on a hand-computed example (two node types, three namespaces,
idle, idle shared back, control-plane fee), to the cent."""

from __future__ import annotations

from decimal import Decimal as D

from clusters.cost.allocation import CONTROL_PLANE, IDLE, Node, Weights, Workload, allocate

# Weights 0.03 per core-hour and 0.004 per GB-hour. Node "small" (2 cores, 8 GB) costs
# 0.115/h = 1.25 x its weighted 0.092: 0.0375 per core-hour, 0.005 per GB-hour. Node "big"
# (4 cores, 32 GB) costs 0.372/h = 1.5 x 0.248: 0.045 per core-hour, 0.006 per GB-hour.
WEIGHTS = Weights(cpu_core_hour=D("0.03"), ram_gb_hour=D("0.004"), gpu_hour=D("1"))
NODES = [Node("small", D(2), D(8), 0, D("0.115")), Node("big", D(4), D(32), 0, D("0.372"))]
WORKLOADS = [
    Workload("web", "small", cpu_request=D(1), ram_request_gb=D(4)),
    # usage above its request: charged for the usage (0.8 cores)
    Workload("api", "small", cpu_request=D("0.5"), ram_request_gb=D(2), cpu_usage=D("0.8")),
    Workload("batch", "big", cpu_request=D(2), ram_request_gb=D(16)),
    Workload("pending", "", cpu_request=D(1), ram_request_gb=D(1)),  # on no node: free
]


def cents(value: D) -> D:
    return value.quantize(D("0.01"))


def test_a_day_matches_the_hand_computation_to_the_cent() -> None:
    rows = allocate(nodes=NODES, workloads=WORKLOADS, hours=D(24), weights=WEIGHTS)
    # web: (1 x 0.0375 + 4 x 0.005) x 24 = 1.38
    assert cents(rows["web"].total) == D("1.38")
    assert cents(rows["web"].cpu_cost) == D("0.90")
    # api: (0.8 x 0.0375 + 2 x 0.005) x 24 = 0.96
    assert cents(rows["api"].total) == D("0.96")
    assert rows["api"].cpu_core_hours == D("19.2")
    # batch: (2 x 0.045 + 16 x 0.006) x 24 = 4.464
    assert cents(rows["batch"].total) == D("4.46")
    # idle: small (0.0075 + 0.01) + big (0.09 + 0.096) per hour, x 24 = 4.884
    assert cents(rows[IDLE].total) == D("4.88")
    assert "pending" not in rows
    # every node-hour is accounted for: (0.115 + 0.372) x 24 = 11.688
    assert sum(row.total for row in rows.values()) == D("11.688")


def test_idle_shared_back_by_weight_and_the_control_plane_fee() -> None:
    rows = allocate(
        nodes=NODES,
        workloads=WORKLOADS,
        hours=D(24),
        weights=WEIGHTS,
        control_plane_hourly=D("0.1"),
        share_idle_by={"web": D(1), "api": D(1), "batch": D(2)},
    )
    assert IDLE not in rows
    assert cents(rows["web"].total) == D("2.60")  # 1.38 + 4.884 / 4
    assert cents(rows["api"].total) == D("2.18")  # 0.96 + 1.221
    assert cents(rows["batch"].total) == D("6.91")  # 4.464 + 2.442
    assert cents(rows[CONTROL_PLANE].total) == D("2.40")
    assert sum(row.total for row in rows.values()) == D("11.688") + D("2.4")


def test_an_overcommitted_node_has_no_negative_idle() -> None:
    rows = allocate(
        nodes=[Node("small", D(2), D(8), 0, D("0.115"))],
        workloads=[Workload("greedy", "small", cpu_request=D(3), ram_request_gb=D(8))],
        hours=D(1),
        weights=WEIGHTS,
    )
    assert IDLE not in rows
    assert rows["greedy"].cpu_cost == D("0.1125")  # charged for what it asked
