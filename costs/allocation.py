"""Cost allocation as OpenCost computes it (pure functions, Decimal money).

A node's hourly price is split into CPU, RAM and GPU shares in proportion to the
resources' unit prices (the "weights"). Each workload is charged
max(request, usage) x the fraction of the hour it ran x the unit price of the node it runs
on. What the nodes cost and no workload was charged is idle, reported per cluster, or
shared back to namespaces:

- by resource (OpenCost's `shareIdle`): CPU idle in proportion to each namespace's CPU
  cost, RAM idle to RAM cost, GPU idle to GPU cost (a namespace using no GPU never
  receives GPU idle);
- by cost: the whole idle in proportion to each namespace's total cost.

Idle of a resource nobody was charged for cannot be shared and stays in the IDLE row: the
cluster's total never changes with the sharing mode. A cluster's control-plane fee is a
cluster-level shared cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Literal

IDLE = "__idle__"
CONTROL_PLANE = "__control_plane__"
ZERO = Decimal(0)
PRECISION = Decimal("0.000001")
MINUTES_PER_HOUR = Decimal(60)
RESOURCES = ("cpu", "ram", "gpu")
QUANTITIES = (
    "cpu_core_hours",
    "ram_gb_hours",
    "gpu_hours",
    "cpu_request_core_hours",
    "ram_request_gb_hours",
    "cpu_usage_core_hours",
    "ram_usage_gb_hours",
)

ShareIdle = Literal["", "resource", "cost"]
SHARE_NONE: ShareIdle = ""
SHARE_BY_RESOURCE: ShareIdle = "resource"
SHARE_BY_COST: ShareIdle = "cost"


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
    # How this node's price splits (None: the cluster's weights).
    weights: Weights | None = None
    # What is paid of the CPU and RAM part of the price, and of the GPU part, after the
    # discounts (OpenCost discounts CPU and RAM only; Keelson's GPU discount is apart).
    cpu_ram_factor: Decimal = Decimal(1)
    gpu_factor: Decimal = Decimal(1)


@dataclass(frozen=True)
class Workload:
    """What a namespace's pods on one node ask for and use. `minutes` is how long they ran
    in each hour (60: the whole hour); usage is the average over those minutes."""

    namespace: str
    node: str
    cpu_request: Decimal
    ram_request_gb: Decimal
    gpu_request: int = 0
    cpu_usage: Decimal | None = None
    ram_usage_gb: Decimal | None = None
    minutes: Decimal = MINUTES_PER_HOUR
    # What is charged when the workload stands for several pods: the sum over the pods of
    # max(request, usage), which may exceed max(sum of requests, sum of usage). None:
    # max(request, usage) of the sums.
    cpu_charged: Decimal | None = None
    ram_charged_gb: Decimal | None = None
    # The pods' controller (`Deployment/web`, "" for bare pods) and their labels: rows are
    # kept apart by them so cost can be grouped by controller and pod label.
    controller: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The row it is charged to: its namespace, or the namespace, controller and
        labels when it has them (read the row's fields, not the key)."""
        if not self.controller and not self.labels:
            return self.namespace
        return "\x00".join([self.namespace, self.controller, repr(self.labels)])


@dataclass
class Allocation:
    namespace: str
    controller: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    cpu_cost: Decimal = ZERO
    ram_cost: Decimal = ZERO
    gpu_cost: Decimal = ZERO
    shared_cost: Decimal = ZERO
    cpu_core_hours: Decimal = ZERO
    ram_gb_hours: Decimal = ZERO
    gpu_hours: Decimal = ZERO
    # Requests and usage, for efficiency (usage / request); usage None when unmeasured.
    cpu_request_core_hours: Decimal = ZERO
    ram_request_gb_hours: Decimal = ZERO
    cpu_usage_core_hours: Decimal | None = None
    ram_usage_gb_hours: Decimal | None = None
    extra: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return self.cpu_cost + self.ram_cost + self.gpu_cost + self.shared_cost

    def cost(self, resource: str) -> Decimal:
        value: Decimal = getattr(self, f"{resource}_cost")
        return value


@dataclass(frozen=True)
class UnitPrices:
    cpu_core_hour: Decimal
    ram_gb_hour: Decimal
    gpu_hour: Decimal


def unit_prices(node: Node, weights: Weights) -> UnitPrices:
    """The node's price per core-hour, GB-hour and GPU-hour: its price split by the
    weights, then the CPU and RAM parts discounted by one factor and the GPU part by
    another (OpenCost's node cost: (CPU + RAM) x (1 - discount) + GPU)."""
    weights = node.weights or weights
    weighted = (
        node.cpu_cores * weights.cpu_core_hour
        + node.ram_gb * weights.ram_gb_hour
        + node.gpus * weights.gpu_hour
    )
    if weighted == 0:
        return UnitPrices(ZERO, ZERO, ZERO)
    scale = node.hourly_price / weighted
    return UnitPrices(
        cpu_core_hour=weights.cpu_core_hour * scale * node.cpu_ram_factor,
        ram_gb_hour=weights.ram_gb_hour * scale * node.cpu_ram_factor,
        gpu_hour=weights.gpu_hour * scale * node.gpu_factor,
    )


def allocate(
    *,
    nodes: list[Node],
    workloads: list[Workload],
    hours: Decimal,
    weights: Weights,
    control_plane_hourly: Decimal = ZERO,
    share_idle: ShareIdle = SHARE_NONE,
) -> dict[str, Allocation]:
    """Allocations by namespace (and controller and pod labels, see `Workload.key`),
    plus IDLE and CONTROL_PLANE rows (when not zero).
    Amounts and quantities are rounded to the micro-unit once, at the end."""
    units = {node.name: unit_prices(node, weights) for node in nodes}
    rows: dict[str, Allocation] = {}
    charged: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for workload in workloads:
        unit = units.get(workload.node)
        if unit is None:
            continue  # pending pods on no node are not charged (nothing runs)
        ran = hours * min(max(workload.minutes, ZERO), MINUTES_PER_HOUR) / MINUTES_PER_HOUR
        cpu = _charged(workload.cpu_request, workload.cpu_usage, workload.cpu_charged) * ran
        ram = _charged(workload.ram_request_gb, workload.ram_usage_gb, workload.ram_charged_gb)
        ram *= ran
        gpu = workload.gpu_request * ran
        row = rows.get(workload.key)
        if row is None:
            row = rows[workload.key] = Allocation(
                workload.namespace, workload.controller, workload.labels
            )
        row.cpu_request_core_hours += workload.cpu_request * ran
        row.ram_request_gb_hours += workload.ram_request_gb * ran
        if workload.cpu_usage is not None:
            row.cpu_usage_core_hours = (row.cpu_usage_core_hours or ZERO) + workload.cpu_usage * ran
        if workload.ram_usage_gb is not None:
            used = workload.ram_usage_gb * ran
            row.ram_usage_gb_hours = (row.ram_usage_gb_hours or ZERO) + used
        row.cpu_core_hours += cpu
        row.ram_gb_hours += ram
        row.gpu_hours += gpu
        costs = (cpu * unit.cpu_core_hour, ram * unit.ram_gb_hour, gpu * unit.gpu_hour)
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
    if share_idle == SHARE_BY_RESOURCE:
        idle = _share_by_resource(idle, rows)
    elif share_idle == SHARE_BY_COST:
        idle = _share_by_cost(idle, rows)
    elif share_idle != SHARE_NONE:
        raise ValueError(f"share_idle must be '', 'resource' or 'cost' (got {share_idle!r})")
    result = dict(rows)
    if idle.total > 0:
        result[IDLE] = idle
    if control_plane_hourly > 0:
        result[CONTROL_PLANE] = Allocation(CONTROL_PLANE, shared_cost=control_plane_hourly * hours)
    for row in result.values():
        for name in ("cpu_cost", "ram_cost", "gpu_cost", "shared_cost"):
            setattr(row, name, getattr(row, name).quantize(PRECISION, rounding=ROUND_HALF_UP))
        for name in QUANTITIES:  # to the columns' six places, half to even as Django does
            value = getattr(row, name)
            if value is not None:
                setattr(row, name, value.quantize(PRECISION, rounding=ROUND_HALF_EVEN))
    return result


def _charged(request: Decimal, usage: Decimal | None, charged: Decimal | None) -> Decimal:
    if charged is not None:
        return max(charged, request)
    return max(request, usage or ZERO)


def _share_by_resource(idle: Allocation, rows: dict[str, Allocation]) -> Allocation:
    """Each resource's idle to the namespaces charged for that resource, by their cost of
    it; returns what could not be shared (a resource nobody was charged for)."""
    left = Allocation(IDLE)
    for resource in RESOURCES:
        amount = idle.cost(resource)
        charged = sum((row.cost(resource) for row in rows.values()), ZERO)
        if charged == 0:
            setattr(left, f"{resource}_cost", amount)
            continue
        for row in rows.values():
            row.shared_cost += amount * row.cost(resource) / charged
    return left


def _share_by_cost(idle: Allocation, rows: dict[str, Allocation]) -> Allocation:
    """All idle to the namespaces by their total cost; returns it whole when no namespace
    was charged anything."""
    weights = {key: row.total for key, row in rows.items()}
    total_weight = sum(weights.values(), ZERO)
    if total_weight == 0:
        return idle
    amount = idle.total
    for key, weight in weights.items():
        rows[key].shared_cost += amount * weight / total_weight
    return Allocation(IDLE)
