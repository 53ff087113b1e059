"""A team's clusters read from the database as the scheduler sees them (before the
application-specific `current`/`tolerated` flags), for `applications.cache`.

Built for large teams (10,000 clusters): clusters are read as plain rows (no model
instances) with only the nodes of their inventories, and prices are resolved in bulk: a
cluster with no pricing of its own on this day resolves to its provider's defaults, so
`resolve` runs once per (provider, region) and once per priced cluster, not once per
cluster. The prices are `cluster_unit_prices`' own (see `_unit_prices`)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from applications.scheduler import Candidate
from clusters.models import Cluster
from costs.allocation import unit_prices
from costs.pricing import PriceBook, ResolvedPricing, resolve
from costs.services import _nodes as cost_nodes

THOUSAND = Decimal(1000)

# What placement reads of a cluster, in the order `load` unpacks it: one query (the ORM
# compiles two for a reloaded cluster in more time than the database answers them).
LOAD = """
SELECT cluster.id, cluster.name, cluster.labels, cluster.provider, cluster.region,
       cluster.zone, cluster.environment, cluster.kubernetes_version, cluster.status,
       cluster.status_changed_at, cluster.taints, cluster.allocatable_cpu_millis,
       cluster.allocatable_memory_bytes, cluster.requested_cpu_millis,
       cluster.requested_memory_bytes, inventory.cluster_id, inventory.collected_at,
       inventory.data -> 'nodes',
       EXISTS (SELECT 1 FROM cost_clusterpricing AS pricing
               WHERE pricing.cluster_id = cluster.id AND pricing.valid_from <= %(day)s)
FROM clusters_cluster AS cluster
LEFT JOIN clusters_clusterinventory AS inventory ON inventory.cluster_id = cluster.id
WHERE cluster.team_id = %(team)s
"""


def _json(value: Any) -> Any:
    """A jsonb value as the driver returns it (Django leaves jsonb undecoded)."""
    return json.loads(value) if isinstance(value, str) else value


# What placement reads of a cluster (the columns of `LOAD`, by field name).
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
    # Unit prices of each cluster without pricing of its own, by what they derive from (its
    # inventory as of when it was collected, its place): a cluster reloaded for a status or
    # label change is not priced again (`_unit_prices` reads every node).
    units: dict[int, tuple[Any, dict[str, Decimal] | None]] = field(default_factory=dict)

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
    # Requested CPU millis and memory bytes as last read; the candidate may be older (the
    # cache's table derives them in arrays, `refreshed` the candidate when needed).
    requested: tuple[int, int] = (0, 0)

    def refreshed(self) -> Candidate:
        """The candidate with the requested figures last read."""
        figures = requested(*self.requested)
        if (self.candidate.requested_cpu, self.candidate.requested_memory) != figures:
            self.candidate = with_usage(self.candidate, figures)
        return self.candidate


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
    with connection.cursor() as cursor:
        cursor.execute(
            LOAD + ("AND cluster.id = ANY(%(ids)s)" if ids is not None else ""),
            {"team": team_id, "day": day, "ids": list(ids or ())},
        )
        rows = cursor.fetchall()
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
        collected_at,
        nodes,
        has_pricing,
    ) in rows:
        labels, taints, nodes = _json(labels), _json(taints), _json(nodes)
        priced = {pk} if has_pricing else set()
        unit = None
        basis = (collected_at, provider, region)
        known = prices.units.get(pk)
        if inventory_pk is not None and pk not in priced and known and known[0] == basis:
            unit = known[1]
        elif inventory_pk is not None:
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
            if pk not in priced:
                prices.units[pk] = (basis, unit)
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
        loaded.append(Loaded(pk, candidate, status_changed_at, (requested_cpu, requested_memory)))
    return loaded


def requested(cpu_millis: int, memory_bytes: int) -> tuple[Decimal, Decimal]:
    """Requested CPU (cores) and memory (bytes) as a candidate holds them, from the row."""
    return Decimal(cpu_millis) / THOUSAND, Decimal(memory_bytes)


def with_usage(candidate: Candidate, usage: tuple[Decimal, Decimal]) -> Candidate:
    return candidate.with_requested(*usage)
