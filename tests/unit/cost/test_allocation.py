"""OpenCost-style allocation on hand-computed examples (two node types, three namespaces,
idle, idle shared back by resource or by cost, GPU idle, control-plane fee), to the cent."""

from __future__ import annotations

from decimal import Decimal as D

from costs.allocation import CONTROL_PLANE, IDLE, Node, Weights, Workload, allocate

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


def test_idle_shared_by_resource_as_opencost_does() -> None:
    # CPU idle: small 2 x 24 x 0.0375 - 0.90 - 0.72 = 0.18, big 4 x 24 x 0.045 - 2.16 = 2.16:
    # 2.34, shared by CPU cost (web 0.90, api 0.72, batch 2.16 of 3.78). RAM idle: small
    # 0.96 - 0.48 - 0.24 = 0.24, big 4.608 - 2.304 = 2.304: 2.544, by RAM cost (web 0.48,
    # api 0.24, batch 2.304 of 3.024).
    rows = allocate(
        nodes=NODES,
        workloads=WORKLOADS,
        hours=D(24),
        weights=WEIGHTS,
        control_plane_hourly=D("0.1"),
        share_idle="resource",
    )
    assert IDLE not in rows
    # web: 1.38 + 2.34 x 0.90 / 3.78 + 2.544 x 0.48 / 3.024 = 1.38 + 0.557143 + 0.403810
    assert rows["web"].shared_cost == D("0.960952")
    assert cents(rows["web"].total) == D("2.34")
    # api: 0.96 + 2.34 x 0.72 / 3.78 + 2.544 x 0.24 / 3.024 = 0.96 + 0.445714 + 0.201905
    assert cents(rows["api"].total) == D("1.61")
    # batch: 4.464 + 2.34 x 2.16 / 3.78 + 2.544 x 2.304 / 3.024 = 4.464 + 1.337143 + 1.938286
    assert cents(rows["batch"].total) == D("7.74")
    assert cents(rows[CONTROL_PLANE].total) == D("2.40")
    assert abs(sum(row.total for row in rows.values()) - D("14.088")) <= D("0.000002")


def test_idle_shared_by_total_cost_stays_an_option() -> None:
    rows = allocate(
        nodes=NODES, workloads=WORKLOADS, hours=D(24), weights=WEIGHTS, share_idle="cost"
    )
    # idle 4.884 by total cost (web 1.38, api 0.96, batch 4.464 of 6.804)
    assert cents(rows["web"].total) == D("2.37")  # 1.38 + 0.990582
    assert cents(rows["api"].total) == D("1.65")  # 0.96 + 0.689101
    assert cents(rows["batch"].total) == D("7.67")  # 4.464 + 3.204317
    assert IDLE not in rows


def test_idle_nobody_can_carry_stays_idle() -> None:
    # Bug: pods without requests weigh zero, and shared idle vanished: the day of these two
    # nodes (11.688) and the fee (2.40) was reported as 2.40.
    nothing = [Workload("web", "small", D(0), D(0)), Workload("batch", "big", D(0), D(0))]
    for mode in ("resource", "cost"):
        rows = allocate(
            nodes=NODES,
            workloads=nothing,
            hours=D(24),
            weights=WEIGHTS,
            control_plane_hourly=D("0.1"),
            share_idle=mode,
        )
        assert rows[IDLE].total == D("11.688"), mode
        assert sum(row.total for row in rows.values()) == D("14.088"), mode


def test_gpu_idle_goes_only_to_gpu_users() -> None:
    # Weights 0.03 / 0.004 / 1: node "gpu" (4 cores, 16 GB, 2 GPUs) at 2.184/h is priced
    # at exactly those unit prices. ml asks 2 cores, 8 GB, 1 GPU: 0.06 + 0.032 + 1 = 1.092;
    # web asks 1 core, 4 GB: 0.03 + 0.016 = 0.046. Idle: CPU 0.03, RAM 0.016, GPU 1.
    node = Node("gpu", D(4), D(16), 2, D("2.184"))
    rows = allocate(
        nodes=[node],
        workloads=[
            Workload("ml", "gpu", D(2), D(8), gpu_request=1),
            Workload("web", "gpu", D(1), D(4)),
        ],
        hours=D(1),
        weights=WEIGHTS,
        share_idle="resource",
    )
    # web: CPU idle x 1/3 + RAM idle x 1/3 = 0.01 + 0.005333; no GPU idle
    assert rows["web"].shared_cost == D("0.015333")
    # ml: 0.02 + 0.010667 + the whole GPU idle 1
    assert rows["ml"].shared_cost == D("1.030667")
    assert rows["ml"].total + rows["web"].total == D("2.184")


def test_a_pod_is_charged_for_the_minutes_it_ran() -> None:
    # Half an hour of 1 core and 4 GB on "small": 0.5 x 0.0375 + 2 x 0.005 = 0.02875
    rows = allocate(
        nodes=NODES,
        workloads=[Workload("cron", "small", D(1), D(4), minutes=D(30))],
        hours=D(1),
        weights=WEIGHTS,
    )
    assert rows["cron"].total == D("0.02875")
    assert (rows["cron"].cpu_core_hours, rows["cron"].ram_gb_hours) == (D("0.5"), D(2))


def test_an_overcommitted_node_has_no_negative_idle() -> None:
    rows = allocate(
        nodes=[Node("small", D(2), D(8), 0, D("0.115"))],
        workloads=[Workload("greedy", "small", cpu_request=D(3), ram_request_gb=D(8))],
        hours=D(1),
        weights=WEIGHTS,
    )
    assert IDLE not in rows
    assert rows["greedy"].cpu_cost == D("0.1125")  # charged for what it asked
