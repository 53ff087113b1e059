"""Cost rollups by any dimension and period, aggregated in the database and scoped to the
teams the user may see (a fleet of 10,000 clusters never loads into Python).

Cluster and team are grouped and filtered by the names kept on each row, so the history of
a deregistered cluster still adds up, and is still seen only by its team. Amounts are
summed unrounded and rounded once: the total is the sum of the rows' unrounded amounts,
never of their rounded cents (a window shows the same total by any dimension)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDay, TruncMonth

from clusters.cost.models import CostAllocation
from fleet.accounts.choices import Role
from fleet.accounts.selectors import AnyUser, team_ids_with_role

GROUPS: dict[str, str] = {
    "cluster": "cluster_name",
    "provider": "provider",
    "region": "region",
    "environment": "environment",
    "namespace": "namespace",
    "team": "team_name",
}
AMOUNTS = (
    "total_cost",
    "cpu_cost",
    "ram_cost",
    "gpu_cost",
    "storage_cost",
    "shared_cost",
    "load_balancer_cost",
)
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")
# Efficiency = measured usage / requests of the same rows (rows without usage, from
# clusters that serve no metrics.k8s.io, count in neither).
USAGE = {
    "cpu_usage": Sum("cpu_usage_core_hours"),
    "cpu_measured_request": Sum(
        "cpu_request_core_hours", filter=Q(cpu_usage_core_hours__isnull=False)
    ),
    "ram_usage": Sum("ram_usage_gb_hours"),
    "ram_measured_request": Sum("ram_request_gb_hours", filter=Q(ram_usage_gb_hours__isnull=False)),
}


def efficiency(used: Decimal | None, requested: Decimal | None) -> Decimal | None:
    """usage / request to four places; None when nothing was measured or requested
    (OpenCost leaves the efficiency of a request-less workload undefined too)."""
    if used is None or not requested:
        return None
    return (used / requested).quantize(RATIO)


def _with_efficiency(row: dict[str, Any]) -> dict[str, Any]:
    measured = {name: row.pop(name) for name in USAGE}
    row["cpu_efficiency"] = efficiency(measured["cpu_usage"], measured["cpu_measured_request"])
    row["ram_efficiency"] = efficiency(measured["ram_usage"], measured["ram_measured_request"])
    return row


@dataclass(frozen=True)
class Rollup:
    """Rows of {group, period?, amounts rounded to the cent, core-hours}, biggest first,
    and the total of the unrounded amounts, rounded once."""

    rows: list[dict[str, Any]]
    total: Decimal


class RollupError(ValueError):
    """A bad group-by, period or filter; the message says which."""


def allocations_visible(*, user: AnyUser) -> QuerySet[CostAllocation]:
    if not user.is_authenticated:
        return CostAllocation.objects.none()
    if getattr(user, "is_superuser", False):
        return CostAllocation.objects.all()
    return CostAllocation.objects.filter(
        team_id__in=team_ids_with_role(user=user, minimum=Role.VIEWER)
    )


def _group_expression(group_by: str) -> Any:
    if group_by in GROUPS:
        return F(GROUPS[group_by])
    if group_by.startswith("label:") and len(group_by) > 6:
        return KeyTextTransform(group_by[6:], "cluster__labels")
    raise RollupError(
        f"group_by must be one of {', '.join(GROUPS)} or label:<key> (got {group_by!r})."
    )


def cost_rollup(
    *,
    user: AnyUser,
    since: datetime,
    until: datetime,
    group_by: str = "cluster",
    period: str | None = None,
    filters: dict[str, str] | None = None,
) -> Rollup:
    """Cost by `group_by` (and day or month) between `since` and `until`."""
    if since >= until:
        raise RollupError("since must be before until.")
    query = allocations_visible(user=user).filter(hour__gte=since, hour__lt=until)
    for key, value in (filters or {}).items():
        if key not in GROUPS:
            raise RollupError(f"Unknown filter {key!r}.")
        query = query.filter(**{GROUPS[key]: value})
    query = query.annotate(group=_group_expression(group_by))
    fields = ["group"]
    if period is not None:
        truncate = {"day": TruncDay, "month": TruncMonth}.get(period)
        if truncate is None:
            raise RollupError("period must be day or month.")
        query = query.annotate(period=truncate("hour"))
        fields.append("period")
    grouped = list(
        query.values(*fields)
        .annotate(
            **{name: Sum(name) for name in AMOUNTS},
            cpu_core_hours=Sum("cpu_core_hours"),
            ram_gb_hours=Sum("ram_gb_hours"),
            **USAGE,
        )
        .order_by(*(["period"] if period else []), "-total_cost")
    )
    total = sum((row["total_cost"] or Decimal(0) for row in grouped), Decimal(0))
    return Rollup(
        rows=[
            _with_efficiency(
                {
                    **row,
                    "group": row["group"] if row["group"] is not None else "(none)",
                    **{name: (row[name] or Decimal(0)).quantize(CENT) for name in AMOUNTS},
                }
            )
            for row in grouped
        ],
        total=total.quantize(CENT),
    )


def cost_total(*, user: AnyUser, since: datetime, until: datetime) -> Decimal:
    total = (
        allocations_visible(user=user)
        .filter(hour__gte=since, hour__lt=until)
        .aggregate(total=Sum("total_cost"))["total"]
    )
    return (total or Decimal(0)).quantize(CENT)
