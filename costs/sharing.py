"""Shared namespaces and fixed overheads, distributed as OpenCost's `shareNamespaces`,
`sharedOverhead` and `shareSplit` do (pure functions, Decimal money).

The cost of the namespaces declared shared (kube-system, monitoring, ...) and a fixed
hourly overhead are taken off their own rows and added to the `shared_cost` of the other
namespaces of the same cluster and hour: evenly (each namespace the same) or by weight
(each namespace by its own total cost). Within a namespace whose cost is split over
several rows (controllers, pod labels), its share goes to those rows by their cost (evenly
when they cost nothing). With no namespace to receive it, nothing moves and the overhead
stays on a SHARED row: a cluster's total never depends on the setting.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Literal

from costs.allocation import CONTROL_PLANE, IDLE, ZERO, Allocation

SHARED = "__shared__"
ShareSplit = Literal["even", "weighted"]
SPLITS: tuple[ShareSplit, ...] = ("even", "weighted")
EXTRAS = ("storage", "load_balancer")
NOT_NAMESPACES = (IDLE, CONTROL_PLANE, SHARED)


def row_total(row: Allocation) -> Decimal:
    """A row's whole cost: its resources, shared part and extras (storage, balancers)."""
    return row.total + sum((row.extra.get(name, ZERO) for name in EXTRAS), ZERO)


def share(
    rows: dict[str, Allocation],
    *,
    namespaces: frozenset[str],
    overhead: Decimal = ZERO,
    split: ShareSplit = "weighted",
) -> dict[str, Allocation]:
    """`rows` with the shared namespaces' cost and `overhead` moved onto the others."""
    if split not in SPLITS:
        raise ValueError(f"split must be even or weighted (got {split!r})")
    shared = {k: r for k, r in rows.items() if r.namespace in namespaces}
    receivers: dict[str, list[Allocation]] = defaultdict(list)
    for key, row in rows.items():
        if key not in shared and row.namespace not in NOT_NAMESPACES:
            receivers[row.namespace].append(row)
    amount = sum((row_total(r) for r in shared.values()), ZERO) + overhead
    if not receivers or amount == 0:
        result = dict(rows)
        if overhead > 0:
            result[SHARED] = Allocation(SHARED, shared_cost=overhead)
        return result
    weights = {
        namespace: (Decimal(1) if split == "even" else sum((row_total(r) for r in group), ZERO))
        for namespace, group in receivers.items()
    }
    total_weight = sum(weights.values(), ZERO)
    if total_weight == 0:  # weighted, but every receiver costs nothing: evenly
        weights = dict.fromkeys(receivers, Decimal(1))
        total_weight = Decimal(len(receivers))
    for namespace, group in receivers.items():
        part = amount * weights[namespace] / total_weight
        costs = [row_total(r) for r in group]
        group_total = sum(costs, ZERO)
        for row, cost in zip(group, costs, strict=True):
            fraction = cost / group_total if group_total else Decimal(1) / len(group)
            row.shared_cost += part * fraction
    return {k: r for k, r in rows.items() if k not in shared}
