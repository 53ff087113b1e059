"""Team and membership changes. Every change is audited."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from fleet.accounts.choices import Role
from fleet.accounts.models import Membership, Team
from fleet.audit.services import audit_record
from fleet.realtime.guard import recheck_user_sockets_on_commit


@transaction.atomic
def team_create(
    *, name: str, display_name: str = "", description: str = "", actor: AbstractBaseUser | None
) -> Team:
    team = Team(name=name, display_name=display_name, description=description)
    team.full_clean()
    team.save()
    audit_record(actor=actor, action="team.create", target=team, team=team)
    # Every team starts with the bundled policy library, in inform mode (DESIGN.md).
    from policies.services.library import library_load

    library_load(team=team)
    return team


@transaction.atomic
def membership_set(
    *, team: Team, user: AbstractBaseUser, role: Role, actor: AbstractBaseUser | None
) -> Membership:
    """Add `user` to `team` with `role`, or change their role."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
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
    deleted, _ = Membership.objects.filter(team=team, user_id=user.pk).delete()
    if deleted:
        audit_record(
            actor=actor,
            action="team.member_remove",
            target=team,
            team=team,
            detail={"user": user.get_username()},
        )
        # Their open live views of the team's objects close (fleet.realtime.guard).
        recheck_user_sockets_on_commit(user.pk)
