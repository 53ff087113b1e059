# ruff: noqa
# mypy: ignore-errors
# Frozen copy of today's scheduler (issue 20) for the placement benchmark: see __init__.py.
"""A team's clusters read from the database as the scheduler sees them (before the
application-specific `current`/`tolerated` flags), for `benchmarks.placement_before.cache`.

Built for large teams (10,000 clusters): clusters are read as plain rows (no model
instances) with only the nodes of their inventories, and prices are resolved in bulk: a
cluster with no pricing of its own on this day resolves to its provider's defaults, so
`resolve` runs once per (provider, region) and once per priced cluster, not once per
cluster. The prices are `cluster_unit_prices`' own (see `_unit_prices`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models.fields.json import KeyTransform

from costs.allocation import unit_prices
from costs.models import ClusterPricing
from costs.pricing import PriceBook, ResolvedPricing, resolve
from costs.services import _nodes as cost_nodes
from clusters.models import Cluster
from benchmarks.placement_before.scheduler import Candidate

THOUSAND = Decimal(1000)

# What placement reads of a cluster, in the order `load` unpacks it.
CANDIDATE_FIELDS = (
    "pk",
    "name",
    "labels",
    "provider",
    "region",
    "zone",
    "environment",
    "kubernetes_version",
    "status",
    "status_changed_at",
    "taints",
    "allocatable_cpu_millis",
    "allocatable_memory_bytes",
    "requested_cpu_millis",
    "requested_memory_bytes",
)


@dataclass
class Prices:
    """What pricing needs for one day: the list prices, and for each (provider, region) one
    real cluster there with its resolution (every cluster without pricing of its own
    resolves the same way; `_nodes` reads only provider and region of it)."""

    day: date
    book: PriceBook
    places: dict[tuple[str, str], tuple[Cluster, ResolvedPricing]] = field(default_factory=dict)

    @classmethod
    def on(cls, day: date) -> Prices:
        return cls(day, PriceBook(day))  # list prices read once, not per cluster


@dataclass(slots=True)
class Loaded:
    """A cluster as the cache holds it. Not frozen: the cache swaps in a candidate with new
    requested figures without allocating a new one (collection changes hundreds a second,
    and every object kept adds to the garbage collector's full passes)."""

    pk: int
    candidate: Candidate  # current=False, tolerated=""
    status_changed_at: datetime | None


def _unit_prices(
    cluster: Cluster,
    inventory: dict[str, Any],
    pricing: ResolvedPricing,
    book: PriceBook,
    moment: datetime,
) -> dict[str, Decimal] | None:
    """`cluster_unit_prices` with the cluster's pricing already resolved (the same
    arithmetic: capacity-weighted price per core-hour and GB-hour)."""
    nodes, _ = cost_nodes(inventory, pricing, cluster, moment, book)
    cores = sum((n.cpu_cores for n in nodes), Decimal(0))
    ram = sum((n.ram_gb for n in nodes), Decimal(0))
    if not cores or not ram:
        return None
    cpu_cost = Decimal(0)
    ram_cost = Decimal(0)
    for node in nodes:
        unit = unit_prices(node, pricing.weights)
        cpu_cost += unit.cpu_core_hour * node.cpu_cores
        ram_cost += unit.ram_gb_hour * node.ram_gb
    return {"cpu_core_hour": cpu_cost / cores, "ram_gb_hour": ram_cost / ram}


def load(
    *, team_id: int, prices: Prices, moment: datetime, ids: Collection[int] | None = None
) -> list[Loaded]:
    """The team's clusters (only `ids` when given; a deleted one is simply absent), priced
    on `prices.day` (`moment` is a time on that day)."""
    day = prices.day
    pricing_rows = ClusterPricing.objects.filter(cluster__team_id=team_id, valid_from__lte=day)
    rows = Cluster.objects.filter(team_id=team_id)
    if ids is not None:
        pricing_rows = pricing_rows.filter(cluster_id__in=ids)
        rows = rows.filter(pk__in=ids)
    priced = set(pricing_rows.values_list("cluster_id", flat=True))
    loaded = []
    for (
        pk,
        name,
        labels,
        provider,
        region,
        zone,
        environment,
        version,
        status,
        status_changed_at,
        taints,
        allocatable_cpu,
        allocatable_memory,
        requested_cpu,
        requested_memory,
        inventory_pk,
        nodes,
    ) in rows.annotate(inventory_nodes=KeyTransform("nodes", "inventory__data")).values_list(
        *CANDIDATE_FIELDS, "inventory__pk", "inventory_nodes"
    ):
        unit = None
        if inventory_pk is not None:
            if pk in priced:  # pricing of its own: resolved as itself
                cluster = Cluster.objects.get(pk=pk)
                pricing = resolve(cluster, day)
            else:
                place = prices.places.get((provider, region))
                if place is None:
                    real = Cluster.objects.get(pk=pk)
                    place = prices.places[(provider, region)] = (real, resolve(real, day))
                cluster, pricing = place
            inventory = {"nodes": nodes} if nodes is not None else {}
            unit = _unit_prices(cluster, inventory, pricing, prices.book, moment)
        candidate = Candidate(
            name=name,
            labels=labels,
            provider=provider,
            region=region,
            zone=zone,
            environment=environment,
            version=version,
            status=status,
            taints=taints,
            allocatable_cpu=Decimal(allocatable_cpu) / THOUSAND,
            allocatable_memory=Decimal(allocatable_memory),
            requested_cpu=Decimal(requested_cpu) / THOUSAND,
            requested_memory=Decimal(requested_memory),
            cpu_price=unit["cpu_core_hour"] if unit else None,
            ram_price=unit["ram_gb_hour"] if unit else None,
        )
        loaded.append(Loaded(pk, candidate, status_changed_at))
    return loaded


def requested(cpu_millis: int, memory_bytes: int) -> tuple[Decimal, Decimal]:
    """Requested CPU (cores) and memory (bytes) as a candidate holds them, from the row."""
    return Decimal(cpu_millis) / THOUSAND, Decimal(memory_bytes)


def with_usage(candidate: Candidate, usage: tuple[Decimal, Decimal]) -> Candidate:
    return candidate.with_requested(*usage)
