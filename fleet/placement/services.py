"""Applications and placement decisions. A decision is computed from the clusters of the
application's team and stored atomically with a version; a simulation computes the same
without storing anything."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from clusters.cost.pricing import PriceBook
from clusters.cost.services import cluster_unit_prices
from clusters.models import Cluster
from fleet.accounts.models import Team
from fleet.audit.services import audit_record
from fleet.placement.manifests import ManifestError, parse_manifests, requests_of
from fleet.placement.models import Application, ApplicationVersion, Placement, PlacementDecision
from fleet.placement.scheduler import Candidate, Decision, PerReplica, schedule
from fleet.placement.spec import placement_spec


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
) -> Application:
    _validated_manifests(manifests)
    placement_spec(placement)
    if Application.objects.filter(name=name).exists():
        raise ValidationError({"name": f"An application named {name!r} exists."})
    application = Application(
        name=name, team=team, namespace=namespace, description=description, created_by=None
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


def _per_replica(application: Application) -> PerReplica:
    latest = application.versions.first()
    objects = parse_manifests(latest.manifests) if latest else []
    # One replica of every workload: what a unit of the application asks of a cluster.
    need = requests_of(objects, replicas=1)
    return PerReplica(cpu=need.cpu, memory=need.memory_bytes)


def placement_candidates(application: Application) -> list[Candidate]:
    """The team's clusters as the scheduler sees them (current = in the last decision)."""
    last = application.decisions.first()
    current = {c["cluster"] for c in last.decision["chosen"]} if last else set()
    candidates = []
    book = PriceBook(timezone.now().date())  # list prices read once, not per cluster
    for cluster in Cluster.objects.filter(team_id=application.team_id).select_related("inventory"):
        inventory = getattr(cluster, "inventory", None)
        prices = (
            cluster_unit_prices(cluster, inventory=inventory.data, book=book)
            if inventory is not None
            else None
        )
        candidates.append(
            Candidate(
                name=cluster.name,
                labels=cluster.labels,
                provider=cluster.provider,
                region=cluster.region,
                zone=cluster.zone,
                environment=cluster.environment,
                version=cluster.kubernetes_version,
                status=cluster.status,
                taints=cluster.taints,
                allocatable_cpu=Decimal(cluster.allocatable_cpu_millis) / 1000,
                allocatable_memory=Decimal(cluster.allocatable_memory_bytes),
                requested_cpu=Decimal(cluster.requested_cpu_millis) / 1000,
                requested_memory=Decimal(cluster.requested_memory_bytes),
                cpu_price=prices["cpu_core_hour"] if prices else None,
                ram_price=prices["ram_gb_hour"] if prices else None,
                current=cluster.name in current,
            )
        )
    return candidates


def placement_simulate(*, application: Application, spec: dict[str, Any] | None = None) -> Decision:
    """What the placement (or `spec`, a what-if) would decide now; nothing is stored."""
    chosen_spec = placement_spec(spec if spec is not None else application.placement.spec)
    return schedule(chosen_spec, placement_candidates(application), _per_replica(application))


@transaction.atomic
def placement_decide(
    *, application: Application, actor: AbstractBaseUser | None = None
) -> PlacementDecision:
    """Compute and store the next decision version (one writer at a time per application)."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    decision = placement_simulate(application=locked)
    version = (locked.decisions.values_list("version", flat=True).first() or 0) + 1
    latest = locked.versions.values_list("number", flat=True).first() or 0
    stored = PlacementDecision.objects.create(
        application=locked,
        version=version,
        application_version=latest,
        decision=decision.as_json(),
    )
    audit_record(
        actor=actor,
        action="placement.decide",
        target=locked,
        team=locked.team,
        detail={"version": version, "clusters": [c["cluster"] for c in decision.chosen]},
    )
    return stored
