"""API building blocks for objects a team owns: the team-owned viewset and the checks of a
create, all asking accounts/permissions.py."""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model, QuerySet
from rest_framework import mixins, viewsets
from rest_framework.request import Request

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import deny, require_role, restrict, user_has_role

_M = TypeVar("_M", bound=Model)


def actor(request: Request) -> AbstractBaseUser:
    """The authenticated user of an API request (IsAuthenticated ran)."""
    assert isinstance(request.user, AbstractBaseUser)
    return request.user


def raw_field(request: Request, field: str) -> str:
    """A string field of the body as sent, before validation ("" if absent)."""
    data = request.data
    value = data.get(field) if hasattr(data, "get") else None
    return value if isinstance(value, str) else ""


def authorize_create(request: Request, *, field: str, minimum: Role, doing: str) -> Team | None:
    """Authorize a create from the raw body, before validating it, so that a caller without
    the role learns nothing from validation (existing names, required fields). An unknown
    team and a team the caller has no role in get the same 403; a missing team is left to
    validation (None)."""
    name = raw_field(request, field)
    if not name:
        return None
    team = Team.objects.filter(name=name).first()
    if team is None or not user_has_role(request.user, team, Role.VIEWER):
        deny(f"You have no role in a team named {name[:63]!r}.", request=request)
    require_role(request.user, team, minimum, doing=doing, request=request)
    return team


class TeamOwnedViewSet(viewsets.GenericViewSet[_M]):
    """A viewset of objects a team owns: lists, detail routes and actions see only the rows
    of the caller's teams (`restrict(queryset, user, "view")`, the team reached through
    `team_path`); writes check the role with `require`. Subclasses set `queryset` (with its
    select_related) and add the mixins they serve."""

    team_path = "team"

    def get_queryset(self) -> QuerySet[_M]:
        return restrict(super().get_queryset(), self.request.user, "view", team_path=self.team_path)

    def require(
        self, team: Team | None, role: Role, doing: str, target: Model | None = None
    ) -> None:
        """Refuse (403, audited) unless the caller holds `role` in `team`."""
        require_role(
            self.request.user, team, role, doing=doing, request=self.request, target=target
        )


class TeamOwnedModelViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    TeamOwnedViewSet[_M],
):
    """A TeamOwnedViewSet with every route of DRF's ModelViewSet."""
