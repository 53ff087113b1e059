"""Reads about who may do what. Superusers hold every role in every team."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from fleet.accounts.choices import Role
from fleet.accounts.models import Membership, Team

AnyUser = AbstractBaseUser | AnonymousUser


def user_role_in_team(*, user: AnyUser, team: Team | None) -> Role | None:
    """The user's role in `team`; a superuser is admin everywhere, team-less objects
    are visible to superusers only."""
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    if team is None:
        return None
    role = (
        Membership.objects.filter(team=team, user_id=user.pk).values_list("role", flat=True).first()
    )
    return Role(role) if role else None


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
    if user.pk is None:
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
