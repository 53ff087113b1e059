"""Computing hourly cost allocations from inventories, and checking budgets.

Beat runs `cost_compute` every 10 minutes for the current hour: the hour's rows are
replaced (never added to), so a rerun or a redelivered task changes nothing, and the
running hour's estimate follows the fleet. Writes are one COPY per batch.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone

from audit.services import audit_record
from clusters.models import Cluster, ClusterInventory
from clusters.services.lifecycle import cluster_set_clusters
from core.db.copy import copy_json, copy_lines, copy_text
from core.db.locks import advisory_lock
from costs.allocation import CONTROL_PLANE, ZERO, Allocation, Node, allocate
from costs.models import (
    Budget,
    BudgetAlert,
    ClusterPricing,
    CostAllocation,
    CostSnapshot,
    RateCard,
)
from costs.pricelist import LOAD_BALANCER_HOURLY
from costs.pricing import PriceBook, ResolvedPricing, resolve
from costs.sharing import EXTRAS, SPLITS, share
from costs.workloads import labels_of
from costs.workloads import workloads as workloads_of

logger = logging.getLogger(__name__)

COST_HOUR_LOCK = 0x636F7374  # "cost": advisory-lock namespace of allocations_replace
GIB = Decimal(2**30)
THOUSAND = Decimal(1000)
ONE_HOUR = Decimal(1)
MICRO = Decimal("0.000001")
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
BATCH = 200  # clusters per transaction: ~200 x (namespaces + 2) rows per insert


def _nodes(
    inventory: dict[str, Any],
    pricing: ResolvedPricing,
    cluster: Cluster,
    day: datetime,
    book: PriceBook | None = None,
    sources: Counter[str] | None = None,
) -> tuple[list[Node], int]:
    """The priced nodes and how many are priced by estimate; `sources` counts how each was
    priced (list, rate_card, estimate) and how many are spot."""
    nodes, estimated = [], 0
    for raw in inventory.get("nodes", []):
        capacity = raw.get("capacity", {})
        cpu = Decimal(capacity.get("cpu_millis", 0)) / THOUSAND
        ram = Decimal(capacity.get("memory_bytes", 0)) / GIB
        gpus = int(capacity.get("gpu", 0))
        price, is_estimate = pricing.node_hourly(
            provider=cluster.provider,
            region=raw.get("region") or cluster.region,
            instance_type=raw.get("instance_type", ""),
            cpu=cpu,
            ram_gb=ram,
            gpus=gpus,
            day=day.date(),
            book=book,
        )
        spot = raw.get("spot") is True  # the provider's label says so (see docs/cost.md)
        if spot:
            price *= pricing.spot_multiplier
        estimated += int(is_estimate)
        if sources is not None:
            card = pricing.rate_card is not None
            sources["rate_card" if card else "estimate" if is_estimate else "list"] += 1
            sources["spot"] += int(spot)
        weights = pricing.node_weights(raw.get("instance_type", ""))
        nodes.append(
            Node(
                raw["name"],
                cpu,
                ram,
                gpus,
                price,
                weights,
                cpu_ram_factor=pricing.cpu_ram_factor,
                gpu_factor=pricing.gpu_factor,
            )
        )
    return nodes, estimated


def provenance(pricing: ResolvedPricing, sources: Counter[str]) -> dict[str, Any]:
    """Why a cluster-hour's figures are what they are: how its nodes were priced (list
    price, rate card and its version, estimate at OpenCost's default unit prices), the
    pricing rule in force and its discounts. Kept on every row of the hour."""
    facts: dict[str, Any] = {
        "nodes": {k: sources[k] for k in ("list", "rate_card", "estimate") if sources[k]},
    }
    if pricing.rate_card is not None:
        facts["rate_card"] = pricing.rate_card.name
        facts["rate_card_version"] = str(pricing.rate_card.valid_from)
    if pricing.pricing is not None:
        facts["pricing_from"] = str(pricing.pricing.valid_from)
        if pricing.pricing.discount_percent:
            facts["discount_percent"] = _plain(pricing.pricing.discount_percent)
        if pricing.pricing.gpu_discount_percent:
            facts["gpu_discount_percent"] = _plain(pricing.pricing.gpu_discount_percent)
        if pricing.pricing.spot:
            facts["spot_cluster"] = True
    if sources["spot"]:
        facts["spot_nodes"] = sources["spot"]
        facts["spot_price_factor"] = _plain(pricing.spot_multiplier)
    return facts


def _plain(number: Decimal) -> str:
    """70.00 -> "70", 0.3000 -> "0.3"."""
    return format(number.normalize(), "f")


def cluster_cost_hour(
    cluster: Cluster, inventory: dict[str, Any], hour: datetime, book: PriceBook | None = None
) -> tuple[dict[str, Allocation], dict[str, Any]]:
    """The allocations of one cluster for one hour and their provenance (no database
    writes)."""
    pricing = resolve(cluster, hour.date())
    sources: Counter[str] = Counter()
    nodes, _ = _nodes(inventory, pricing, cluster, hour, book, sources)
    workloads = [
        workload
        for row in inventory.get("allocations", [])
        if row.get("node")
        for workload in workloads_of(row, hour)
    ]
    rows = allocate(
        nodes=nodes,
        workloads=workloads,
        hours=ONE_HOUR,
        weights=pricing.weights,
        control_plane_hourly=pricing.control_plane_hourly,
        share_idle=pricing.share_idle,
    )
    for namespace, storage_class, size in _volumes(inventory):
        row = rows.setdefault(namespace, Allocation(namespace))
        cost = Decimal(size) / GIB * pricing.volume_gb_hour(storage_class)
        row.extra["storage"] = row.extra.get("storage", ZERO) + cost
    balancer_hourly = LOAD_BALANCER_HOURLY.get(cluster.provider, ZERO)
    for namespace, count in (inventory.get("load_balancers") or {}).items():
        if balancer_hourly and count:
            row = rows.setdefault(namespace, Allocation(namespace))
            row.extra["load_balancer"] = balancer_hourly * count * ONE_HOUR
    if pricing.shared_namespaces or pricing.shared_overhead_hourly:
        rows = share(
            rows,
            namespaces=pricing.shared_namespaces,
            overhead=pricing.shared_overhead_hourly * ONE_HOUR,
            split=pricing.share_split,
        )
    for row in rows.values():
        row.shared_cost = row.shared_cost.quantize(MICRO)
        for name in EXTRAS:
            if name in row.extra:
                row.extra[name] = row.extra[name].quantize(MICRO)
    return rows, provenance(pricing, sources)


def namespace_labels(inventory: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each namespace's labels, as the collector saw them."""
    return {
        ns["name"]: dict(labels_of(ns.get("labels")))
        for ns in inventory.get("namespaces") or ()
        if isinstance(ns, dict) and isinstance(ns.get("name"), str)
    }


def _volumes(inventory: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Bound volumes as (namespace, storage class, bytes). Inventories from before volumes
    were recorded (and older agents) have bytes per namespace only: the default class."""
    if "volumes" in inventory:
        return [(v["namespace"], v["storage_class"], int(v["bytes"])) for v in inventory["volumes"]]
    storage: dict[str, int] = inventory.get("storage_bytes") or {}
    return [(namespace, "", int(size)) for namespace, size in storage.items()]


# What a cost allocation row holds, in the order `allocation_rows` yields and COPY writes.
ALLOCATION_COLUMNS = (
    "cluster_id",
    "cluster_name",
    "hour",
    "namespace",
    "controller",
    "labels",
    "namespace_labels",
    "team_id",
    "team_name",
    "provider",
    "region",
    "environment",
    "cpu_cost",
    "ram_cost",
    "gpu_cost",
    "storage_cost",
    "shared_cost",
    "load_balancer_cost",
    "total_cost",
    "cpu_core_hours",
    "ram_gb_hours",
    "gpu_hours",
    "cpu_request_core_hours",
    "ram_request_gb_hours",
    "cpu_usage_core_hours",
    "ram_usage_gb_hours",
    "estimated",
    "provenance",
)


def allocation_rows(
    cluster: Cluster,
    hour: datetime,
    rows: dict[str, Allocation],
    namespaces: dict[str, dict[str, str]] | None = None,
    facts: dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """One cluster's allocations for `hour` as plain tuples of ALLOCATION_COLUMNS (load the
    cluster with its team: the team's name is kept on every row). `namespaces` gives each
    namespace's labels, copied onto its rows; `facts` the hour's provenance (a row is
    estimated when a node was priced by estimate or the hour was backfilled).
    `allocation_lines` writes the same rows in COPY's format, faster."""
    facts = facts or {}
    estimated = _estimated(facts)
    namespaces = namespaces or {}
    return [
        (
            cluster.pk,
            cluster.name,
            hour,
            row.namespace,
            row.controller,
            dict(row.labels),
            namespaces.get(row.namespace, {}),
            cluster.team_id,
            cluster.team.name,
            cluster.provider,
            cluster.region,
            cluster.environment,
            *_figures(row),
            estimated,
            facts,
        )
        for row in rows.values()
    ]


def _estimated(facts: dict[str, Any]) -> bool:
    return bool(facts.get("nodes", {}).get("estimate")) or bool(facts.get("backfilled"))


def _figures(row: Allocation) -> list[Decimal | None]:
    """cpu, ram, gpu, storage, shared, load balancer and total cost, then the quantities
    (core-hours, GB-hours, GPU-hours, requests, usage: None where unmeasured), in
    ALLOCATION_COLUMNS order. They are rounded to the micro-unit where computed
    (`allocate`, `cluster_cost_hour`), once; anything finer that reaches the table is
    rounded by PostgreSQL to the column's six places (a tie away from zero)."""
    storage = row.extra.get("storage", ZERO)
    balancers = row.extra.get("load_balancer", ZERO)
    cpu, ram, gpu, shared = row.cpu_cost, row.ram_cost, row.gpu_cost, row.shared_cost
    return [
        cpu,
        ram,
        gpu,
        storage,
        shared,
        balancers,
        cpu + ram + gpu + shared + storage + balancers,
        row.cpu_core_hours,
        row.ram_gb_hours,
        row.gpu_hours,
        row.cpu_request_core_hours,
        row.ram_request_gb_hours,
        row.cpu_usage_core_hours,
        row.ram_usage_gb_hours,
    ]


def allocation_lines(
    cluster: Cluster,
    hour: datetime,
    rows: dict[str, Allocation],
    namespaces: dict[str, dict[str, str]] | None = None,
    facts: dict[str, Any] | None = None,
) -> list[str]:
    """`allocation_rows` as lines of COPY's text format, each exactly what `copy_line`
    makes of the row (tests/cost/test_cost_copy.py), with `core.db.copy`'s escaping (NUL
    stripped). What is the same on every row of the cluster-hour (cluster, hour, team,
    provenance) is formatted once, and each row's values directly: building a tuple and
    formatting it value by value was most of the hourly write's time beside COPY's."""
    facts = facts or {}
    namespaces = namespaces or {}
    head = f"{cluster.pk}\t{copy_text(cluster.name)}\t{hour.isoformat()}"
    middle = "\t".join(
        [
            str(cluster.team_id),
            copy_text(cluster.team.name),
            copy_text(cluster.provider),
            copy_text(cluster.region),
            copy_text(cluster.environment),
        ]
    )
    tail = f"{'t' if _estimated(facts) else 'f'}\t{copy_json(facts)}"
    namespace_json: dict[str, str] = {}
    lines = []
    for row in rows.values():
        namespace = row.namespace
        labels = namespace_json.get(namespace)
        if labels is None:
            labels = namespace_json[namespace] = copy_json(namespaces.get(namespace, {}))
        lines.append(
            "\t".join(
                [
                    head,
                    copy_text(namespace),
                    copy_text(row.controller),
                    copy_json(dict(row.labels)) if row.labels else "{}",
                    labels,
                    middle,
                    *["\\N" if value is None else str(value) for value in _figures(row)],
                    tail,
                ]
            )
        )
    return lines


def allocations_replace(*, cluster_ids: list[int], hour: datetime, lines: list[str]) -> int:
    """Replace the allocations of `cluster_ids` for `hour` by `lines` (`allocation_lines`)
    in one transaction: a delete, then PostgreSQL COPY through the one COPY
    implementation (`core.db.copy`)."""
    # One writer per hour: the hourly run and a "compute now" of the same cluster would
    # otherwise both delete, then both COPY, and the second would break the unique key.
    hour_key = (COST_HOUR_LOCK, int(hour.timestamp()) // 3600)
    with advisory_lock(hour_key, wait=True), transaction.atomic():
        CostAllocation.objects.filter(cluster_id__in=cluster_ids, hour=hour).delete()
        return copy_lines(CostAllocation, ALLOCATION_COLUMNS, lines)


def cost_compute(*, hour: datetime | None = None, cluster_ids: list[int] | None = None) -> int:
    """(Re)compute one hour for every cluster with an inventory; returns rows written."""
    hour = (hour or timezone.now()).replace(minute=0, second=0, microsecond=0)
    query = ClusterInventory.objects.select_related("cluster__team").order_by("cluster_id")
    if cluster_ids is not None:
        query = query.filter(cluster_id__in=cluster_ids)
    written = 0
    failed: list[int] = []
    batch: list[ClusterInventory] = []
    for inventory in query.iterator(chunk_size=BATCH):
        batch.append(inventory)
        if len(batch) == BATCH:
            written += _write_isolated(batch, hour, failed)
            batch = []
    if batch:
        written += _write_isolated(batch, hour, failed)
    if failed:  # the other batches are written; the task fails so the retry redoes these
        raise CostComputeIncomplete(f"{len(failed)} clusters not priced for {hour:%Y-%m-%d %H}:00")
    return written


class CostComputeIncomplete(Exception):
    """Some batches of an hour failed; the others were written."""


def _write_isolated(batch: list[ClusterInventory], hour: datetime, failed: list[int]) -> int:
    """One batch; a failure (bad data in one cluster) leaves the other batches' teams
    priced instead of ending the hour's run."""
    try:
        return _write(batch, hour)
    except Exception:
        ids = [i.cluster_id for i in batch]
        logger.exception("cost of clusters %s for %s not computed", ids, hour)
        failed.extend(ids)
        return 0


# The inventory's parts cost reads, kept per cluster-hour for backfill.
SNAPSHOT_KEYS = ("nodes", "allocations", "volumes", "storage_bytes", "load_balancers", "namespaces")


def snapshot_of(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in SNAPSHOT_KEYS if key in data}


def _write(batch: list[ClusterInventory], hour: datetime) -> int:
    lines: list[str] = []
    book = PriceBook(hour.date())  # one query for the batch's list prices
    for inventory in batch:
        allocations, facts = cluster_cost_hour(inventory.cluster, inventory.data, hour, book)
        labels = namespace_labels(inventory.data)
        lines += allocation_lines(inventory.cluster, hour, allocations, labels, facts)
    cluster_ids = [i.cluster_id for i in batch]
    written = allocations_replace(cluster_ids=cluster_ids, hour=hour, lines=lines)
    CostSnapshot.objects.bulk_create(
        [
            CostSnapshot(
                cluster_id=i.cluster_id,
                hour=hour,
                collected_at=i.collected_at,
                data=snapshot_of(i.data),
            )
            for i in batch
        ],
        update_conflicts=True,
        unique_fields=["cluster", "hour"],
        update_fields=["collected_at", "data"],
    )
    return written


def cluster_pricing_set(
    *, actor: Any, cluster: Cluster, valid_from: date, **fields: Any
) -> ClusterPricing:
    """Price a cluster from `valid_from` (today or later: never retroactive)."""
    if valid_from < timezone.now().date():
        raise ValidationError(
            {"valid_from": "Prices change from today or later, never in the past."}
        )
    discount = Decimal(fields.get("discount_percent") or 0)
    if not 0 <= discount <= 100:
        raise ValidationError({"discount_percent": "A discount is 0 to 100 percent."})
    gpu_discount = Decimal(fields.get("gpu_discount_percent") or 0)
    if not 0 <= gpu_discount <= 100:
        raise ValidationError({"gpu_discount_percent": "A discount is 0 to 100 percent."})
    shared = fields.get("shared_namespaces") or []
    if not isinstance(shared, list) or not all(
        isinstance(n, str) and NAMESPACE_NAME.fullmatch(n) for n in shared
    ):
        raise ValidationError({"shared_namespaces": "A list of namespace names."})
    if fields.get("share_split", "weighted") not in SPLITS:
        raise ValidationError({"share_split": "even or weighted."})
    if Decimal(fields.get("shared_overhead_monthly") or 0) < 0:
        raise ValidationError({"shared_overhead_monthly": "An overhead is not negative."})
    card = fields.get("rate_card") or ""
    if card and not RateCard.objects.filter(name=card, team_id=cluster.team_id).exists():
        raise ValidationError({"rate_card": f"No rate card named {card!r}."})
    with transaction.atomic():
        pricing, _ = ClusterPricing.objects.update_or_create(
            cluster=cluster,
            valid_from=valid_from,
            defaults={
                **fields,
                "discount_percent": discount,
                "gpu_discount_percent": gpu_discount,
                "rate_card": card,
            },
        )
        audit_record(
            actor=actor,
            action="cluster.pricing.set",
            target=cluster,
            team=cluster.team,
            detail={"valid_from": str(valid_from), **{k: str(v) for k, v in fields.items()}},
        )
    return pricing


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


RUN_RATE_HOURS = 24  # the recent window the forecast's run rate is measured over


def budget_status(budget: Budget, now: datetime | None = None) -> dict[str, Decimal]:
    """Month to date, and the month's forecast: spent + run rate x hours remaining.

    The current hour's rows are a whole-hour estimate, so "so far" ends at the end of the
    current hour. The run rate is measured over the last RUN_RATE_HOURS hours (fewer at
    the start of the month), cluster by cluster: a cluster's cost in that window divided
    by the hours elapsed since its first row in it (not by the hours that have rows, nor
    by hours before it existed). A cluster added mid-month is forecast from its own pace,
    not as if it had run all month; a deregistered cluster costs nothing more."""
    now = now or timezone.now()
    start, end = _month_bounds(now)
    so_far = min(now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1), end)
    rows = CostAllocation.objects.filter(hour__gte=start, hour__lt=so_far)
    if budget.cluster_set is not None:
        members = cluster_set_clusters(cluster_set=budget.cluster_set).values("pk")
        rows = rows.filter(cluster_id__in=members)
    else:
        rows = rows.filter(team_id=budget.team_id)
    spent = rows.aggregate(total=Sum("total_cost"))["total"] or Decimal(0)
    window_start = max(start, so_far - timedelta(hours=RUN_RATE_HOURS))
    run_rate = Decimal(0)
    recent = (
        rows.filter(hour__gte=window_start, cluster__isnull=False)
        .values("cluster_id")
        .annotate(total=Sum("total_cost"), first=Min("hour"))
        .order_by()
    )
    for cluster in recent:
        hours = Decimal((so_far - cluster["first"]).total_seconds() / 3600)
        run_rate += cluster["total"] / hours
    remaining = Decimal((end - so_far).total_seconds() / 3600)
    forecast = spent + run_rate * remaining
    return {
        "spent": spent.quantize(Decimal("0.01")),
        "forecast": forecast.quantize(Decimal("0.01")),
        "amount": budget.monthly_amount,
    }


def budgets_check(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Alert (once a month per budget) when the forecast exceeds the budget."""
    now = now or timezone.now()
    month = now.date().replace(day=1)
    alerts = []
    for budget in Budget.objects.select_related("team", "cluster_set"):
        status = budget_status(budget, now)
        if status["forecast"] <= budget.monthly_amount:
            continue
        alert, created = BudgetAlert.objects.get_or_create(
            budget=budget,
            month=month,
            defaults={"forecast": status["forecast"], "spent": status["spent"]},
        )
        if created:
            audit_record(
                actor=None,
                action="budget.alert",
                target=budget,
                team=budget.team,
                detail={k: str(v) for k, v in status.items()},
            )
            logger.warning(
                "budget %s: forecast %s exceeds %s",
                budget.name,
                status["forecast"],
                budget.monthly_amount,
            )
            alerts.append(alert)
    return alerts


def cluster_unit_prices(
    cluster: Cluster,
    day: datetime | None = None,
    *,
    inventory: dict[str, Any] | None = None,
    book: PriceBook | None = None,
) -> dict[str, Decimal] | None:
    """The cluster's average price per core-hour and GB-hour (capacity-weighted), for the
    placement's cheapest-capacity prioritizer; None without an inventory. Callers looping
    over clusters pass the inventory they loaded and one PriceBook."""
    from costs.allocation import unit_prices

    if inventory is None:
        row = ClusterInventory.objects.filter(cluster=cluster).first()
        if row is None:
            return None
        inventory = row.data
    moment = day or timezone.now()
    pricing = resolve(cluster, moment.date())
    nodes, _ = _nodes(inventory, pricing, cluster, moment, book)
    cores = sum((n.cpu_cores for n in nodes), Decimal(0))
    ram = sum((n.ram_gb for n in nodes), Decimal(0))
    if not cores or not ram:
        return None
    cpu_cost = sum(
        (unit_prices(n, pricing.weights).cpu_core_hour * n.cpu_cores for n in nodes), Decimal(0)
    )
    ram_cost = sum(
        (unit_prices(n, pricing.weights).ram_gb_hour * n.ram_gb for n in nodes), Decimal(0)
    )
    return {"cpu_core_hour": cpu_cost / cores, "ram_gb_hour": ram_cost / ram}


__all__ = ["CONTROL_PLANE", "budgets_check", "cluster_unit_prices", "cost_compute"]
