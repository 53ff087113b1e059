"""Applications and placement decisions. A decision is computed from the clusters of the
application's team and stored atomically with a version; a simulation computes the same
without storing anything."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Team
from applications.cache import candidate_cache
from applications.guardrails import guardrail_errors
from applications.manifests import ManifestError, parse_manifests, requests_of
from applications.models import (
    Application,
    ApplicationVersion,
    Placement,
    PlacementDecision,
    WorkState,
)
from applications.overrides import overrides_spec
from applications.scheduler import Candidate, Decision, PerReplica, schedule
from applications.spec import placement_spec, rollout_spec
from applications.table import Table
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
    latest = application.versions.values_list("pk", flat=True).first()
    return _per_replica_by_pk(latest)


def _per_replica_by_pk(version_pk: int | None) -> PerReplica:
    """What one replica of the version asks (parsed once per process: a version's manifests
    never change)."""
    if version_pk is None:
        return _per_replica_of(0, "")
    need = _needs.get(version_pk)
    if need is None:
        manifests = ApplicationVersion.objects.values_list("manifests", flat=True).get(
            pk=version_pk
        )
        need = _per_replica_of(version_pk, manifests)
        if len(_needs) >= 1024:
            _needs.clear()
        _needs[version_pk] = need
    return need


_needs: dict[int, PerReplica] = {}


@lru_cache(maxsize=1024)
def _per_replica_of(version_pk: int, manifests: str) -> PerReplica:
    """A version's manifests never change: parsed once per process, not once per call."""
    # One replica of every workload: what a unit of the application asks of a cluster.
    need = requests_of(parse_manifests(manifests) if manifests else [], replicas=1)
    return PerReplica(cpu=need.cpu, memory=need.memory_bytes)


# What placement reads of an application besides its spec, in one round trip: the last
# decision's chosen clusters, the newest version, and where it runs (works not orphaned)
# with the replicas each was given.
PLACEMENT_STATE = """
SELECT
  (SELECT decision.decision -> 'chosen' FROM placement_placementdecision AS decision
   WHERE decision.application_id = %(application)s ORDER BY decision.version DESC LIMIT 1),
  (SELECT version.id FROM placement_applicationversion AS version
   WHERE version.application_id = %(application)s ORDER BY version.number DESC LIMIT 1),
  array(SELECT json_build_array(cluster.name, work.replicas)
        FROM placement_clusterwork AS work
        JOIN clusters_cluster AS cluster ON cluster.id = work.cluster_id
        WHERE work.application_id = %(application)s AND work.state <> %(orphaned)s)
"""


def _json(value: Any) -> Any:
    """A json/jsonb value as read by the driver (Django leaves jsonb undecoded)."""
    return json.loads(value) if isinstance(value, str) else value


def _placement_state(application: Application) -> tuple[dict[str, int], int | None]:
    """What the application holds on each current cluster, so that its own pods count as
    room for it (issue 20, bug 1): the last decision's share; where it runs without one
    (kept from an empty decision), the replicas its work was given (None: one unit of
    manifests). And its newest version's primary key."""
    with connection.cursor() as cursor:
        cursor.execute(
            PLACEMENT_STATE, {"application": application.pk, "orphaned": WorkState.ORPHANED}
        )
        chosen, version_pk, running = cursor.fetchone()
    held = {c["cluster"]: int(c.get("replicas") or 0) for c in _json(chosen) or ()}
    for name, replicas in map(_json, running):
        held.setdefault(name, 1 if replicas is None else replicas)
    return held, version_pk


def placement_candidates(
    application: Application, *, toleration_seconds: int = 300
) -> list[Candidate]:
    """The team's clusters as the scheduler sees them (`placement_table`'s)."""
    return placement_table(application, toleration_seconds=toleration_seconds).candidates


def placement_table(
    application: Application, *, toleration_seconds: int = 300, now: datetime | None = None
) -> Table:
    """The team's clusters as the scheduler sees them, from the process's candidate cache
    (`applications.cache`), fresh as of this call. Current: in the last decision, or
    running the application (a decision that chose nothing was kept from emptying it, and
    its pods there are its own, not a competitor's)."""
    held, _ = _placement_state(application)
    return candidate_cache.table(
        team_id=application.team_id,
        current=held,
        toleration_seconds=toleration_seconds,
        now=now,
    )


def placement_simulate(*, application: Application, spec: dict[str, Any] | None = None) -> Decision:
    """What the placement (or `spec`, a what-if) would decide now; nothing is stored."""
    chosen_spec = placement_spec(spec if spec is not None else application.placement.spec)
    now = timezone.now()
    held, version_pk = _placement_state(application)
    table = candidate_cache.table(
        team_id=application.team_id,
        current=held,
        toleration_seconds=chosen_spec.unreachable_toleration_seconds,
        now=now,
    )
    return schedule(chosen_spec, table, _per_replica_by_pk(version_pk), now=now.timestamp())


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
