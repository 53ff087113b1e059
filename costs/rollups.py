"""Cost rollups by any dimension and period, aggregated in the database and scoped to the
teams the user may see (a fleet of 10,000 clusters never loads into Python).

Cluster and team are grouped and filtered by the names kept on each row, so the history of
a deregistered cluster still adds up, and is still seen only by its team. Amounts are
summed unrounded and rounded once: the total is the sum of the rows' unrounded amounts,
never of their rounded cents (a window shows the same total by any dimension)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg, BoolOr
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDay, TruncMonth

from accounts.permissions import restrict
from accounts.selectors import AnyUser
from costs.models import CostAllocation

GROUPS: dict[str, str] = {
    "cluster": "cluster_name",
    "provider": "provider",
    "region": "region",
    "environment": "environment",
    "namespace": "namespace",
    "team": "team_name",
    "controller": "controller",
}
# `<prefix><key>`: a label's value. `label:` is the cluster's label (kept as it always
# was), `pod_label:` the pods', `namespace_label:` their namespace's.
LABEL_PREFIXES: dict[str, str] = {
    "label:": "cluster__labels",
    "pod_label:": "labels",
    "namespace_label:": "namespace_labels",
}
MAX_KEYS = 2  # group by at most two keys at once (team x environment)
SEPARATOR = " / "
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
    """A bad group-by, period, filter or span; the message says which, `field` names the
    parameter."""

    def __init__(self, message: str, field: str = "group_by") -> None:
        super().__init__(message)
        self.field = field


# What one request may read: a span and a number of rows that answer in well under a second
# at fleet size (docs/performance.md, "Cost"); past them the message says how to narrow it.
MAX_SPAN = timedelta(days=400)
MAX_ROWS = 10_000


def allocations_visible(*, user: AnyUser) -> QuerySet[CostAllocation]:
    """Rows of the teams the user sees (a deregistered cluster's rows keep their team)."""
    return restrict(CostAllocation.objects.all(), user, "view")


def _expression(key: str, what: str = "group_by") -> Any:
    if key in GROUPS:
        return F(GROUPS[key])
    for prefix, field in LABEL_PREFIXES.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return KeyTextTransform(key[len(prefix) :], field)
    raise RollupError(
        f"{what} must be one of {', '.join(GROUPS)}, label:<key> (cluster), pod_label:<key> "
        f"or namespace_label:<key> (got {key!r})."
    )


def group_keys(group_by: str) -> list[str]:
    """`a` or `a,b`: one or two keys, each validated."""
    keys = [key.strip() for key in group_by.split(",")]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise RollupError(f"group_by takes one or two keys, comma-separated (got {group_by!r}).")
    for key in keys:
        _expression(key)
    return keys


def is_filter(key: str) -> bool:
    """Whether a query parameter names a dimension (a filter on it)."""
    return key in GROUPS or any(
        key.startswith(prefix) and len(key) > len(prefix) for prefix in LABEL_PREFIXES
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
        raise RollupError("since must be before until.", field="since")
    if until - since > MAX_SPAN:
        raise RollupError(f"A rollup covers at most {MAX_SPAN.days} days.", field="since")
    query = allocations_visible(user=user).filter(hour__gte=since, hour__lt=until)
    for index, (key, value) in enumerate((filters or {}).items()):
        query = query.annotate(**{f"filter_{index}": _expression(key, "a filter")}).filter(
            **{f"filter_{index}": value}
        )
    keys = group_keys(group_by)
    query = query.annotate(**{f"group_{i}": _expression(key) for i, key in enumerate(keys)})
    fields = [f"group_{i}" for i in range(len(keys))]
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
            estimated=BoolOr("estimated"),
            **(
                {"provenance": ArrayAgg("provenance", distinct=True)} if keys == ["cluster"] else {}
            ),
        )
        .order_by(*(["period"] if period else []), "-total_cost")[: MAX_ROWS + 1]
    )
    if len(grouped) > MAX_ROWS:
        raise RollupError(
            f"More than {MAX_ROWS:,} rows: filter, group by fewer keys or use a longer period."
        )
    total = sum((row["total_cost"] or Decimal(0) for row in grouped), Decimal(0))
    return Rollup(
        rows=[_with_efficiency(_named(row, len(keys))) for row in grouped],
        total=total.quantize(CENT),
    )


def _named(row: dict[str, Any], keys: int) -> dict[str, Any]:
    """`group` is the key's value, or the keys' values joined by " / "; `groups` lists them
    (a row without the label reads "(none)"). `estimated` says whether any figure in the
    group is an estimate; grouped by cluster, `provenance` lists how its hours were priced."""
    values = [row.pop(f"group_{i}") for i in range(keys)]
    values = [value if value is not None else "(none)" for value in values]
    return {
        **row,
        "group": SEPARATOR.join(values),
        "groups": values,
        **{name: (row[name] or Decimal(0)).quantize(CENT) for name in AMOUNTS},
    }


def cost_total(*, user: AnyUser, since: datetime, until: datetime) -> Decimal:
    total = (
        allocations_visible(user=user)
        .filter(hour__gte=since, hour__lt=until)
        .aggregate(total=Sum("total_cost"))["total"]
    )
    return (total or Decimal(0)).quantize(CENT)
