"""Reads about people. Who may do what lives in accounts/permissions.py."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Membership
from accounts.permissions import AnyUser, is_superuser

__all__ = ["AnyUser", "addable_user"]


def addable_user(*, actor: AnyUser, username: str) -> AbstractBaseUser | None:
    """The user named `username` if `actor` may see them (and so add them to a team):
    anyone for a superuser, else people sharing a team with the actor. None otherwise,
    whether or not such an account exists, so adding a member is no way to learn which
    user names exist."""
    users = get_user_model()._default_manager.filter(username=username, is_active=True)
    if not actor.is_authenticated:
        return None
    if not is_superuser(actor):
        shared = Membership.objects.filter(user_id=actor.pk).values("team_id")
        users = users.filter(memberships__team_id__in=shared)
    user: AbstractBaseUser | None = users.distinct().first()
    return user
