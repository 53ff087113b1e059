"""Cluster templates: saved specs to create clusters from. Each write is validated (the
spec by its provider), saved and audited in one transaction; the caller checked that the
actor operates the template's team (and, on a move, the new team)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Team
from audit.services import audit_record
from clusters.models import ClusterTemplate
from clusters.providers.base import ClusterSpec
from clusters.providers.registry import get_provider


def cluster_template_spec(data: Any) -> ClusterSpec:
    """Parse a spec and have its provider check it (ValidationError naming the field)."""
    spec = ClusterSpec.from_json(data)
    get_provider(spec.provider).validate(spec)
    return spec


@transaction.atomic
def cluster_template_create(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    name: str,
    spec: dict[str, Any],
    description: str = "",
) -> ClusterTemplate:
    template = ClusterTemplate(
        name=name,
        team=team,
        description=description,
        spec=cluster_template_spec(spec).as_json(),
        created_by_id=actor.pk if actor is not None else None,
    )
    template.full_clean()  # name: a slug, unique
    template.save()
    audit_record(
        actor=actor,
        action="clustertemplate.create",
        target=template,
        team=team,
        detail={"spec": template.spec},
    )
    return template


_CHANGEABLE = frozenset({"name", "description", "team", "spec"})


def _shown(value: Any) -> Any:
    return value.name if isinstance(value, Team) else value


@transaction.atomic
def cluster_template_update(
    *, actor: AbstractBaseUser | None, template: ClusterTemplate, changes: dict[str, Any]
) -> ClusterTemplate:
    """Change the name, description, team or spec; audited with what changed."""
    unknown = set(changes) - _CHANGEABLE
    if unknown:
        raise ValidationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "spec" in changes:
        changes = {**changes, "spec": cluster_template_spec(changes["spec"]).as_json()}
    locked = ClusterTemplate.objects.select_for_update().get(pk=template.pk)
    diff: dict[str, Any] = {}
    for field, value in changes.items():
        before = getattr(locked, field)
        if before != value:
            diff[field] = {"from": _shown(before), "to": _shown(value)}
            setattr(locked, field, value)
    if not diff:
        return locked
    locked.full_clean()
    locked.save()
    audit_record(
        actor=actor,
        action="clustertemplate.update",
        target=locked,
        team=locked.team,
        detail=diff,
    )
    return locked


@transaction.atomic
def cluster_template_delete(*, actor: AbstractBaseUser | None, template: ClusterTemplate) -> None:
    """Delete a template; clusters created from it keep their own copy of the spec."""
    audit_record(
        actor=actor,
        action="clustertemplate.delete",
        target=template,
        team=template.team,
        detail={"spec": template.spec},
    )
    template.delete()
