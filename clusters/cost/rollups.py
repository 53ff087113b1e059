"""Cost rollups by any dimension and period, aggregated in the database and scoped to the
teams the user may see (a fleet of 10,000 clusters never loads into Python)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDay, TruncMonth

from clusters.cost.models import CostAllocation
from fleet.accounts.choices import Role
from fleet.accounts.selectors import AnyUser, team_ids_with_role

GROUPS: dict[str, str] = {
    "cluster": "cluster__name",
    "provider": "provider",
    "region": "region",
    "environment": "environment",
    "namespace": "namespace",
    "team": "team__name",
}
AMOUNTS = ("total_cost", "cpu_cost", "ram_cost", "gpu_cost", "storage_cost", "shared_cost")


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
) -> list[dict[str, Any]]:
    """Rows of {group, period?, total_cost, cpu_cost, ..., core_hours}, biggest first."""
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
    rows = (
        query.values(*fields)
        .annotate(
            **{name: Sum(name) for name in AMOUNTS},
            cpu_core_hours=Sum("cpu_core_hours"),
            ram_gb_hours=Sum("ram_gb_hours"),
        )
        .order_by(*(["period"] if period else []), "-total_cost")
    )
    return [
        {
            **row,
            "group": row["group"] if row["group"] is not None else "(none)",
            **{name: (row[name] or Decimal(0)).quantize(Decimal("0.01")) for name in AMOUNTS},
        }
        for row in rows
    ]


def cost_total(*, user: AnyUser, since: datetime, until: datetime) -> Decimal:
    total = (
        allocations_visible(user=user)
        .filter(hour__gte=since, hour__lt=until)
        .aggregate(total=Sum("total_cost"))["total"]
    )
    return (total or Decimal(0)).quantize(Decimal("0.01"))
