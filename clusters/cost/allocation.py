"""Cost allocation as OpenCost computes it (pure functions, Decimal money).

A node's hourly price is split into CPU, RAM and GPU shares in proportion to the
resources' unit prices (the "weights"). Each workload is charged
max(request, usage) x hours x the unit price of the node it runs on. What the nodes cost
and no workload was charged is idle, reported per cluster, or shared back to namespaces
by weight. A cluster's control-plane fee is a cluster-level shared cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

IDLE = "__idle__"
CONTROL_PLANE = "__control_plane__"
ZERO = Decimal(0)
PRECISION = Decimal("0.000001")


@dataclass(frozen=True)
class Weights:
    """Relative unit prices used to split a node's price (OpenCost's defaults)."""

    cpu_core_hour: Decimal = Decimal("0.031611")
    ram_gb_hour: Decimal = Decimal("0.004237")
    gpu_hour: Decimal = Decimal("0.95")


@dataclass(frozen=True)
class Node:
    name: str
    cpu_cores: Decimal
    ram_gb: Decimal
    gpus: int
    hourly_price: Decimal


@dataclass(frozen=True)
class Workload:
    namespace: str
    node: str
    cpu_request: Decimal
    ram_request_gb: Decimal
    gpu_request: int = 0
    cpu_usage: Decimal | None = None
    ram_usage_gb: Decimal | None = None


@dataclass
class Allocation:
    namespace: str
    cpu_cost: Decimal = ZERO
    ram_cost: Decimal = ZERO
    gpu_cost: Decimal = ZERO
    shared_cost: Decimal = ZERO
    cpu_core_hours: Decimal = ZERO
    ram_gb_hours: Decimal = ZERO
    gpu_hours: Decimal = ZERO
    cpu_usage_core_hours: Decimal | None = None
    extra: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return self.cpu_cost + self.ram_cost + self.gpu_cost + self.shared_cost


@dataclass(frozen=True)
class UnitPrices:
    cpu_core_hour: Decimal
    ram_gb_hour: Decimal
    gpu_hour: Decimal


def unit_prices(node: Node, weights: Weights) -> UnitPrices:
    """The node's price per core-hour, GB-hour and GPU-hour."""
    weighted = (
        node.cpu_cores * weights.cpu_core_hour
        + node.ram_gb * weights.ram_gb_hour
        + node.gpus * weights.gpu_hour
    )
    if weighted == 0:
        return UnitPrices(ZERO, ZERO, ZERO)
    scale = node.hourly_price / weighted
    return UnitPrices(
        cpu_core_hour=weights.cpu_core_hour * scale,
        ram_gb_hour=weights.ram_gb_hour * scale,
        gpu_hour=weights.gpu_hour * scale,
    )


def allocate(
    *,
    nodes: list[Node],
    workloads: list[Workload],
    hours: Decimal,
    weights: Weights,
    control_plane_hourly: Decimal = ZERO,
    share_idle_by: dict[str, Decimal] | None = None,
) -> dict[str, Allocation]:
    """Allocations by namespace, plus IDLE and CONTROL_PLANE rows (when not zero)."""
    units = {node.name: unit_prices(node, weights) for node in nodes}
    rows: dict[str, Allocation] = defaultdict(lambda: Allocation(""))
    charged: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for workload in workloads:
        unit = units.get(workload.node)
        if unit is None:
            continue  # pending pods on no node are not charged (nothing runs)
        cpu = max(workload.cpu_request, workload.cpu_usage or ZERO)
        ram = max(workload.ram_request_gb, workload.ram_usage_gb or ZERO)
        row = rows[workload.namespace]
        row.namespace = workload.namespace
        row.cpu_core_hours += cpu * hours
        row.ram_gb_hours += ram * hours
        row.gpu_hours += workload.gpu_request * hours
        costs = (
            cpu * hours * unit.cpu_core_hour,
            ram * hours * unit.ram_gb_hour,
            workload.gpu_request * hours * unit.gpu_hour,
        )
        row.cpu_cost += costs[0]
        row.ram_cost += costs[1]
        row.gpu_cost += costs[2]
        for index, cost in enumerate(costs):
            charged[workload.node][index] += cost
    idle = Allocation(IDLE)
    for node in nodes:
        unit = units[node.name]
        spent = charged[node.name]
        # An overcommitted node is fully allocated: idle never goes negative.
        idle.cpu_cost += max(node.cpu_cores * hours * unit.cpu_core_hour - spent[0], ZERO)
        idle.ram_cost += max(node.ram_gb * hours * unit.ram_gb_hour - spent[1], ZERO)
        idle.gpu_cost += max(node.gpus * hours * unit.gpu_hour - spent[2], ZERO)
    result = dict(rows)
    if share_idle_by:
        _share(idle, result, share_idle_by)
    elif idle.total > 0:
        result[IDLE] = idle
    if control_plane_hourly > 0:
        result[CONTROL_PLANE] = Allocation(CONTROL_PLANE, shared_cost=control_plane_hourly * hours)
    for row in result.values():
        for name in ("cpu_cost", "ram_cost", "gpu_cost", "shared_cost"):
            setattr(row, name, getattr(row, name).quantize(PRECISION, rounding=ROUND_HALF_UP))
    return result


def _share(idle: Allocation, rows: dict[str, Allocation], weights: dict[str, Decimal]) -> None:
    total_weight = sum(weights.values(), ZERO)
    if total_weight == 0:
        return
    for namespace, weight in weights.items():
        row = rows.setdefault(namespace, Allocation(namespace))
        row.shared_cost += idle.total * weight / total_weight
