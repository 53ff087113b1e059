"""Per-object role checks for the clusters API (refusals are audited by the handler)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from accounts.choices import Role
from accounts.models import Team
from accounts.selectors import user_has_role


def actor(request: Request) -> AbstractBaseUser:
    assert isinstance(request.user, AbstractBaseUser)  # IsAuthenticated ran
    return request.user


def require_role(request: Request, team: Team | None, minimum: Role, doing: str) -> None:
    if not user_has_role(user=request.user, team=team, minimum=minimum):
        raise PermissionDenied(f"You need the {minimum.label.lower()} role in the team to {doing}.")


def _raw(request: Request, field: str) -> str:
    data = request.data
    value = data.get(field) if hasattr(data, "get") else None
    return value if isinstance(value, str) else ""


def authorize_create(request: Request, *, field: str, minimum: Role, doing: str) -> Team | None:
    """Authorize a create from the raw body, before validating it, so that a caller without
    the role learns nothing from validation (existing names, required fields). An unknown
    team and a team the caller has no role in get the same 403 (audited by the handler);
    a missing team is left to validation (None)."""
    name = _raw(request, field)
    if not name:
        return None
    team = Team.objects.filter(name=name).first()
    if team is None or not user_has_role(user=request.user, team=team, minimum=Role.VIEWER):
        raise PermissionDenied(f"You have no role in a team named {name[:63]!r}.")
    require_role(request, team, minimum, doing)
    return team


def authorize_cluster_write(request: Request, *, field: str, minimum: Role, doing: str) -> None:
    """As `authorize_create`, for bodies that name a cluster instead of a team."""
    from clusters.selectors import cluster_list

    name = _raw(request, field)
    if not name:
        return
    cluster = cluster_list(user=request.user).filter(name=name).select_related("team").first()
    if cluster is None:
        raise PermissionDenied(f"You have no role in the team of a cluster named {name[:63]!r}.")
    require_role(request, cluster.team, minimum, doing)
