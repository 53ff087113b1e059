"""Applications and placement decisions. A decision is computed from the clusters of the
application's team and stored atomically with a version; a simulation computes the same
without storing anything."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from clusters.cost.allocation import unit_prices
from clusters.cost.models import ClusterPricing
from clusters.cost.pricing import PriceBook, ResolvedPricing, resolve
from clusters.cost.services import _nodes as cost_nodes
from clusters.models import Cluster
from fleet.accounts.models import Team
from fleet.audit.services import audit_record
from fleet.placement.manifests import ManifestError, parse_manifests, requests_of
from fleet.placement.models import Application, ApplicationVersion, Placement, PlacementDecision
from fleet.placement.overrides import overrides_spec
from fleet.placement.scheduler import HEALTHY, Candidate, Decision, PerReplica, schedule
from fleet.placement.spec import placement_spec, rollout_spec


def _validated_manifests(text: str) -> list[dict[str, Any]]:
    try:
        return parse_manifests(text)
    except ManifestError as error:
        raise ValidationError({"manifests": error.errors}) from None


@transaction.atomic
def application_create(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    namespace: str,
    manifests: str,
    placement: dict[str, Any] | None = None,
    description: str = "",
    overrides: list[Any] | None = None,
    rollout: dict[str, Any] | None = None,
) -> Application:
    _validated_manifests(manifests)
    placement_spec(placement)
    overrides_spec(overrides)
    rollout_spec(rollout)
    if Application.objects.filter(name=name).exists():
        raise ValidationError({"name": f"An application named {name!r} exists."})
    application = Application(
        name=name,
        team=team,
        namespace=namespace,
        description=description,
        overrides=overrides or [],
        rollout=rollout or {},
        created_by=None,
    )
    if actor is not None and actor.is_authenticated:
        application.created_by_id = actor.pk
    application.full_clean()
    application.save()
    ApplicationVersion.objects.create(
        application=application, number=1, manifests=manifests, created_by=application.created_by
    )
    Placement.objects.create(application=application, spec=placement or {})
    audit_record(actor=actor, action="application.create", target=application, team=team)
    return application


@transaction.atomic
def application_version_add(
    *, actor: AbstractBaseUser | None, application: Application, manifests: str
) -> ApplicationVersion:
    _validated_manifests(manifests)
    locked = Application.objects.select_for_update().get(pk=application.pk)
    latest = locked.versions.values_list("number", flat=True).first() or 0
    version = ApplicationVersion.objects.create(
        application=locked, number=latest + 1, manifests=manifests
    )
    audit_record(
        actor=actor,
        action="application.version",
        target=locked,
        team=locked.team,
        detail={"version": version.number},
    )
    return version


UPDATABLE = ("description", "placement", "overrides", "rollout")


@transaction.atomic
def application_update(
    *, actor: AbstractBaseUser | None, application: Application, changes: dict[str, Any]
) -> Application:
    """Change the description, placement, overrides or rollout strategy. Nothing reaches the
    clusters until the next rollout (or reschedule)."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValidationError({key: "This field cannot be changed." for key in unknown})
    if "placement" in changes:
        placement_spec(changes["placement"])
        Placement.objects.update_or_create(
            application=locked, defaults={"spec": changes["placement"] or {}}
        )
    if "overrides" in changes:
        overrides_spec(changes["overrides"])
        locked.overrides = changes["overrides"] or []
    if "rollout" in changes:
        rollout_spec(changes["rollout"])
        locked.rollout = changes["rollout"] or {}
    if "description" in changes:
        locked.description = str(changes["description"])
    locked.save()
    audit_record(
        actor=actor,
        action="application.update",
        target=locked,
        team=locked.team,
        detail={"fields": sorted(changes)},
    )
    return locked


def _per_replica(application: Application) -> PerReplica:
    latest = application.versions.first()
    objects = parse_manifests(latest.manifests) if latest else []
    # One replica of every workload: what a unit of the application asks of a cluster.
    need = requests_of(objects, replicas=1)
    return PerReplica(cpu=need.cpu, memory=need.memory_bytes)


def _tolerated(cluster: Cluster, toleration_seconds: int, now: datetime) -> str:
    """Why a chosen cluster that is no longer healthy keeps its place (empty: it does not)."""
    if cluster.status in HEALTHY or cluster.status_changed_at is None:
        return ""
    age = int((now - cluster.status_changed_at).total_seconds())
    if age >= toleration_seconds:
        return ""
    return f"{cluster.status} for {age}s, tolerated up to {toleration_seconds}s"


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


def placement_candidates(
    application: Application, *, toleration_seconds: int = 300
) -> list[Candidate]:
    """The team's clusters as the scheduler sees them (current = in the last decision).

    Built for large teams (10,000 clusters): clusters are read as plain rows (no model
    instances) with only the nodes of their inventories, and prices are resolved in bulk:
    a cluster with no pricing of its own on this day resolves to its provider's defaults,
    so `resolve` runs once per (provider, region) and once per priced cluster, not once
    per cluster. The prices are `cluster_unit_prices`' own (see `_unit_prices`)."""
    last = application.decisions.first()
    current = {c["cluster"] for c in last.decision["chosen"]} if last else set()
    candidates = []
    now = timezone.now()
    day = now.date()
    book = PriceBook(day)  # list prices read once, not per cluster
    priced = set(
        ClusterPricing.objects.filter(
            cluster__team_id=application.team_id, valid_from__lte=day
        ).values_list("cluster_id", flat=True)
    )
    # One real cluster per (provider, region): `resolve` gives every cluster there without
    # pricing of its own the same answer, and `_nodes` reads only provider and region.
    places: dict[tuple[str, str], tuple[Cluster, ResolvedPricing]] = {}
    thousand = Decimal(1000)
    rows = (
        Cluster.objects.filter(team_id=application.team_id)
        .annotate(inventory_nodes=KeyTransform("nodes", "inventory__data"))
        .values_list(*CANDIDATE_FIELDS, "inventory__pk", "inventory_nodes")
    )
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
    ) in rows:
        prices = None
        if inventory_pk is not None:
            if pk in priced:  # pricing of its own: resolved as itself
                cluster = Cluster.objects.get(pk=pk)
                pricing = resolve(cluster, day)
            else:
                place = places.get((provider, region))
                if place is None:
                    real = Cluster.objects.get(pk=pk)
                    place = places[(provider, region)] = (real, resolve(real, day))
                cluster, pricing = place
            inventory = {"nodes": nodes} if nodes is not None else {}
            prices = _unit_prices(cluster, inventory, pricing, book, now)
        in_current = name in current
        candidates.append(
            Candidate(
                name=name,
                labels=labels,
                provider=provider,
                region=region,
                zone=zone,
                environment=environment,
                version=version,
                status=status,
                taints=taints,
                allocatable_cpu=Decimal(allocatable_cpu) / thousand,
                allocatable_memory=Decimal(allocatable_memory),
                requested_cpu=Decimal(requested_cpu) / thousand,
                requested_memory=Decimal(requested_memory),
                cpu_price=prices["cpu_core_hour"] if prices else None,
                ram_price=prices["ram_gb_hour"] if prices else None,
                current=in_current,
                tolerated=_tolerated(
                    Cluster(status=status, status_changed_at=status_changed_at),
                    toleration_seconds,
                    now,
                )
                if in_current
                else "",
            )
        )
    return candidates


# What placement reads of a cluster, in the order `placement_candidates` unpacks it.
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


def placement_simulate(*, application: Application, spec: dict[str, Any] | None = None) -> Decision:
    """What the placement (or `spec`, a what-if) would decide now; nothing is stored."""
    chosen_spec = placement_spec(spec if spec is not None else application.placement.spec)
    candidates = placement_candidates(
        application, toleration_seconds=chosen_spec.unreachable_toleration_seconds
    )
    return schedule(chosen_spec, candidates, _per_replica(application))


@transaction.atomic
def placement_decide(
    *,
    application: Application,
    actor: AbstractBaseUser | None = None,
    version: int | None = None,
) -> PlacementDecision:
    """Compute and store the next decision version (one writer at a time per application),
    for application `version` (the newest when omitted)."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    decision = placement_simulate(application=locked)
    number = (locked.decisions.values_list("version", flat=True).first() or 0) + 1
    latest = locked.versions.values_list("number", flat=True).first() or 0
    stored = PlacementDecision.objects.create(
        application=locked,
        version=number,
        application_version=version if version is not None else latest,
        decision=decision.as_json(),
    )
    audit_record(
        actor=actor,
        action="placement.decide",
        target=locked,
        team=locked.team,
        detail={"version": number, "clusters": [c["cluster"] for c in decision.chosen]},
    )
    return stored
