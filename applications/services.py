"""Applications and placement decisions. A decision is computed from the clusters of the
application's team and stored atomically with a version; a simulation computes the same
without storing anything."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.fields.json import KeyTransform

from accounts.models import Team
from applications.cache import candidate_cache
from applications.guard import running_clusters
from applications.guardrails import guardrail_errors
from applications.manifests import ManifestError, parse_manifests, requests_of
from applications.models import (
    Application,
    ApplicationVersion,
    ClusterWork,
    Placement,
    PlacementDecision,
)
from applications.overrides import overrides_spec
from applications.scheduler import Candidate, Decision, PerReplica, schedule
from applications.spec import placement_spec, rollout_spec
from audit.services import audit_record


def _validated_manifests(
    text: str, *, team: Team | None = None, namespace: str = ""
) -> list[dict[str, Any]]:
    """Parsed manifests; with `team`, also within the team's guardrails."""
    try:
        objects = parse_manifests(text)
    except ManifestError as error:
        raise ValidationError({"manifests": error.errors}) from None
    if team is not None and (
        refused := guardrail_errors(team=team, namespace=namespace, objects=objects)
    ):
        raise ValidationError({"manifests": refused})
    return objects


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
    _validated_manifests(manifests, team=team, namespace=namespace)
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
    locked = Application.objects.select_for_update().get(pk=application.pk)
    _validated_manifests(manifests, team=locked.team, namespace=locked.namespace)
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
    latest = application.versions.values_list("pk", "manifests").first()
    return _per_replica_of(*latest) if latest else _per_replica_of(0, "")


@lru_cache(maxsize=1024)
def _per_replica_of(version_pk: int, manifests: str) -> PerReplica:
    """A version's manifests never change: parsed once per process, not once per call."""
    # One replica of every workload: what a unit of the application asks of a cluster.
    need = requests_of(parse_manifests(manifests) if manifests else [], replicas=1)
    return PerReplica(cpu=need.cpu, memory=need.memory_bytes)


def placement_candidates(
    application: Application, *, toleration_seconds: int = 300
) -> list[Candidate]:
    """The team's clusters as the scheduler sees them, from the process's candidate cache
    (`applications.cache`), fresh as of this call. Current: in the last decision, or
    running the application (a decision that chose nothing was kept from emptying it, and
    its pods there are its own, not a competitor's)."""
    chosen = (
        application.decisions.annotate(chosen=KeyTransform("chosen", "decision"))
        .values_list("chosen", flat=True)
        .first()
    )
    # What the application holds on each current cluster, so that its own pods count as room
    # for it (issue 20, bug 1): the last decision's share; where it runs without one (kept
    # from an empty decision), the replicas its work was given (None: one unit of manifests).
    held = {c["cluster"]: int(c.get("replicas") or 0) for c in chosen or ()}
    running = set(running_clusters(application))
    for name, replicas in ClusterWork.objects.filter(
        application=application, cluster__name__in=running - held.keys()
    ).values_list("cluster__name", "replicas"):
        held[name] = 1 if replicas is None else replicas
    return candidate_cache.candidates(
        team_id=application.team_id,
        current=held,
        toleration_seconds=toleration_seconds,
    )


def placement_simulate(*, application: Application, spec: dict[str, Any] | None = None) -> Decision:
    """What the placement (or `spec`, a what-if) would decide now; nothing is stored."""
    chosen_spec = placement_spec(spec if spec is not None else application.placement.spec)
    candidates = placement_candidates(
        application, toleration_seconds=chosen_spec.unreachable_toleration_seconds
    )
    # The cache's candidates are sorted by name: the scheduler need not sort them again.
    return schedule(chosen_spec, candidates, _per_replica(application), by_name=True)


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
