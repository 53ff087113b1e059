"""Reads about who may do what. Superusers hold every role in every team. A request made
with an API token carries the token's scope on its user (`token_scope`), which caps the
role in every team: read → viewer, write → operator, admin → no cap."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from accounts.choices import Role, TokenScope
from accounts.models import Membership, Team

AnyUser = AbstractBaseUser | AnonymousUser


def _role_cap(user: AnyUser) -> Role | None:
    scope = getattr(user, "token_scope", None)
    return TokenScope(scope).role_cap if scope is not None else None


def _capped(role: Role | None, user: AnyUser) -> Role | None:
    cap = _role_cap(user)
    if role is None or cap is None or cap.includes(role):
        return role
    return cap


def user_role_in_team(*, user: AnyUser, team: Team | None) -> Role | None:
    """The user's role in `team` (capped by the API token's scope); a superuser is admin
    everywhere, team-less objects are visible to superusers only."""
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return _capped(Role.ADMIN, user)
    if team is None:
        return None
    role = (
        Membership.objects.filter(team=team, user_id=user.pk).values_list("role", flat=True).first()
    )
    return _capped(Role(role), user) if role else None


def user_has_role(*, user: AnyUser, team: Team | None, minimum: Role) -> bool:
    role = user_role_in_team(user=user, team=team)
    return role is not None and role.includes(minimum)


def team_list(*, user: AnyUser) -> QuerySet[Team]:
    """Teams the user can see: all for a superuser, their own otherwise."""
    if not user.is_authenticated:
        return Team.objects.none()
    if getattr(user, "is_superuser", False):
        return Team.objects.all()
    return Team.objects.filter(memberships__user_id=user.pk).distinct()


def team_ids_with_role(*, user: AnyUser, minimum: Role) -> list[int]:
    """Ids of the teams where the user holds at least `minimum` (not for superusers)."""
    allowed = [role for role in Role if role.includes(minimum)]
    cap = _role_cap(user)
    if user.pk is None or (cap is not None and not cap.includes(minimum)):
        return []
    return list(
        Membership.objects.filter(user_id=user.pk, role__in=allowed).values_list(
            "team_id", flat=True
        )
    )


def addable_user(*, actor: AnyUser, username: str) -> AbstractBaseUser | None:
    """The user named `username` if `actor` may see them (and so add them to a team):
    anyone for a superuser, else people sharing a team with the actor. None otherwise,
    whether or not such an account exists, so adding a member is no way to learn which
    user names exist."""
    users = get_user_model()._default_manager.filter(username=username, is_active=True)
    if not actor.is_authenticated:
        return None
    if not getattr(actor, "is_superuser", False):
        shared = Membership.objects.filter(user_id=actor.pk).values("team_id")
        users = users.filter(memberships__team_id__in=shared)
    user: AbstractBaseUser | None = users.distinct().first()
    return user
