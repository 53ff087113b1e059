"""Per-object role checks for the clusters API (refusals are audited by the handler)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from fleet.accounts.choices import Role
from fleet.accounts.models import Team
from fleet.accounts.selectors import user_has_role


def actor(request: Request) -> AbstractBaseUser:
    assert isinstance(request.user, AbstractBaseUser)  # IsAuthenticated ran
    return request.user


def require_role(request: Request, team: Team | None, minimum: Role, doing: str) -> None:
    if not user_has_role(user=request.user, team=team, minimum=minimum):
        raise PermissionDenied(f"You need the {minimum.label.lower()} role in the team to {doing}.")
