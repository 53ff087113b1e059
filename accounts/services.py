"""Team and membership changes. Every change is audited."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from accounts.choices import MembershipSource, Role
from accounts.models import ExternalIdentity, GroupMapping, Membership, Team
from accounts.signals import team_created
from accounts.tokens import api_tokens_revoke_all
from audit.services import audit_record
from core.realtime.guard import recheck_user_sockets_on_commit


@transaction.atomic
def team_create(
    *, name: str, display_name: str = "", description: str = "", actor: AbstractBaseUser | None
) -> Team:
    team = Team(name=name, display_name=display_name, description=description)
    team.full_clean()
    team.save()
    audit_record(actor=actor, action="team.create", target=team, team=team)
    team_created.send(sender=Team, team=team)
    return team


@transaction.atomic
def membership_set(
    *, team: Team, user: AbstractBaseUser, role: Role, actor: AbstractBaseUser | None
) -> Membership:
    """Add `user` to `team` with `role`, or change their role."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    existing = Membership.objects.select_for_update().filter(team=team, user_id=user.pk).first()
    if existing is not None:
        _refuse_idp(existing, user)
    elif (
        GroupMapping.objects.filter(team=team).exists()
        and ExternalIdentity.objects.filter(user_id=user.pk).exists()
    ):
        raise ValidationError(
            f"Team {team.name} takes its single sign-on members from group mapping: add "
            f"{user.get_username()} to a mapped group at the identity provider."
        )
    membership, created = Membership.objects.select_for_update().update_or_create(
        team=team, user_id=user.pk, defaults={"role": role}
    )
    audit_record(
        actor=actor,
        action="team.member_add" if created else "team.member_role",
        target=team,
        team=team,
        detail={"user": user.get_username(), "role": str(role)},
    )
    recheck_user_sockets_on_commit(user.pk)
    return membership


@transaction.atomic
def membership_remove(
    *, team: Team, user: AbstractBaseUser, actor: AbstractBaseUser | None
) -> None:
    existing = Membership.objects.select_for_update().filter(team=team, user_id=user.pk).first()
    if existing is not None:
        _refuse_idp(existing, user)
    deleted, _ = Membership.objects.filter(team=team, user_id=user.pk).delete()
    if deleted:
        audit_record(
            actor=actor,
            action="team.member_remove",
            target=team,
            team=team,
            detail={"user": user.get_username()},
        )
        # Their open live views of the team's objects close (core.realtime.guard).
        recheck_user_sockets_on_commit(user.pk)


def _refuse_idp(membership: Membership, user: AbstractBaseUser) -> None:
    if membership.source == MembershipSource.IDP:
        raise ValidationError(
            f"{user.get_username()}'s membership comes from the identity provider's groups "
            "(group mapping): change their groups there; it applies at their next sign-in."
        )


@transaction.atomic
def team_update(
    *, team: Team, actor: AbstractBaseUser, display_name: str, description: str
) -> Team:
    """Change a team's display name and description (team admins; callers check)."""
    locked = Team.objects.select_for_update().get(pk=team.pk)
    before = {"display_name": locked.display_name, "description": locked.description}
    locked.display_name = display_name.strip()
    locked.description = description.strip()
    if len(locked.description) > 2000:
        raise ValidationError({"description": "At most 2000 characters."})
    locked.full_clean()
    locked.save(update_fields=["display_name", "description"])
    after = {"display_name": locked.display_name, "description": locked.description}
    audit_record(
        actor=actor,
        action="team.update",
        target=locked,
        team=locked,
        detail={"before": before, "after": after},
    )
    return locked


_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]{1,63}$")


@transaction.atomic
def team_guardrails_set(
    *,
    team: Team,
    actor: AbstractBaseUser,
    allowed_namespaces: list[str] | None = None,
    allow_cluster_scoped: bool | None = None,
) -> Team:
    """Change what the team's applications may contain. Team admins only (callers check the
    role); audited with the values before and after."""
    locked = Team.objects.select_for_update().get(pk=team.pk)
    before = {
        "allowed_namespaces": list(locked.allowed_namespaces or []),
        "allow_cluster_scoped": locked.allow_cluster_scoped,
    }
    if allowed_namespaces is not None:
        if not isinstance(allowed_namespaces, list) or not all(
            isinstance(p, str) and _NAMESPACE_PATTERN.match(p) for p in allowed_namespaces
        ):
            raise ValidationError(
                {
                    "allowed_namespaces": "A list of namespace names or globs (lowercase "
                    "letters, digits, '-', '*', '?'; at most 63 characters each)."
                }
            )
        if len(allowed_namespaces) > 100:
            raise ValidationError({"allowed_namespaces": "At most 100 entries."})
        locked.allowed_namespaces = list(dict.fromkeys(allowed_namespaces))
    if allow_cluster_scoped is not None:
        locked.allow_cluster_scoped = bool(allow_cluster_scoped)
    locked.save(update_fields=["allowed_namespaces", "allow_cluster_scoped"])
    audit_record(
        actor=actor,
        action="team.guardrails",
        target=locked,
        team=locked,
        detail={
            "before": before,
            "after": {
                "allowed_namespaces": locked.allowed_namespaces,
                "allow_cluster_scoped": locked.allow_cluster_scoped,
            },
        },
    )
    return locked


@transaction.atomic
def user_password_change(
    *, user: AbstractBaseUser, new_password: str, revoke_tokens: bool, request: HttpRequest | None
) -> int:
    """Set the password (validated by the caller's form) and, when asked, revoke all the
    user's API tokens. Other sessions end by themselves: each session stores a hash of the
    password, which no longer matches. Returns how many tokens were revoked."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    revoked = api_tokens_revoke_all(user=user, reason="password change") if revoke_tokens else 0
    audit_record(
        actor=user, action="account.password_change", detail={"revoked": revoked}, request=request
    )
    return revoked
