"""Single sign-on: the user behind verified OpenID Connect claims, and the group mapping
(IdP group → team and role) applied at each sign-in. Every change is audited.

A user is found by the provider's issuer and `sub` (accounts.ExternalIdentity), never by a
name or address the provider sends, so a provider account can never take over a local
one (the break-glass admin's, say). A new user gets an unusable password: the local
form never signs them in.

Memberships the mapping makes are `source=idp`: the next sign-in sets their role from the
groups then held, and removes them when no group maps to the team any more. Hand edits of
them are refused (accounts/services.py); memberships made by hand are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.choices import MembershipSource, Role
from accounts.models import ExternalIdentity, GroupMapping, Membership, Team
from audit.services import audit_record
from core.realtime.guard import recheck_user_sockets_on_commit

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")
MAX_GROUPS = 1000


@dataclass
class GroupChanges:
    """What one application of the mapping changed, by team name."""

    added: dict[str, str] = field(default_factory=dict)
    changed: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def groups_from_claims(claims: dict[str, Any], claim: str) -> list[str]:
    """The group names in `claims[claim]`: a list of strings (or one string); anything
    else counts as no groups."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return sorted({item for item in value if isinstance(item, str) and item})[:MAX_GROUPS]


def _free_username(wanted: str, subject: str) -> str:
    users = get_user_model()._default_manager
    base = _USERNAME_UNSAFE.sub("-", wanted)[:120] or "user"
    if not users.filter(username=base).exists():
        return base
    suffix = _USERNAME_UNSAFE.sub("-", subject)[:8]
    candidate = f"{base}-{suffix}"
    number = 2
    while users.filter(username=candidate).exists():
        candidate = f"{base}-{suffix}-{number}"
        number += 1
    return candidate


def desired_memberships(groups: list[str]) -> dict[int, Role]:
    """Team id → the highest role the rules give these groups."""
    wanted: dict[int, Role] = {}
    for team_id, role in GroupMapping.objects.filter(group__in=groups).values_list(
        "team_id", "role"
    ):
        if team_id not in wanted or Role(role).rank > wanted[team_id].rank:
            wanted[team_id] = Role(role)
    return wanted


def groups_apply(
    *, user: AbstractBaseUser, groups: list[str], request: HttpRequest | None = None
) -> GroupChanges:
    """Make the user's `idp` memberships what the rules give `groups`: add, change or
    remove them (a hand-made membership in a mapped team becomes an `idp` one). The
    user's live views re-check at once after commit; their API tokens follow by
    themselves (roles are read at each request)."""
    wanted = desired_memberships(groups)
    changes = GroupChanges()
    teams = {team.pk: team for team in Team.objects.filter(pk__in=wanted)}
    held = {
        membership.team_id: membership
        for membership in Membership.objects.select_for_update()
        .select_related("team")
        .filter(user_id=user.pk)
    }
    for team_id, membership in held.items():
        if team_id in wanted:
            role = wanted[team_id]
            if membership.role == role and membership.source == MembershipSource.IDP:
                continue
            membership.role = role
            membership.source = MembershipSource.IDP
            membership.save(update_fields=["role", "source"])
            changes.changed[membership.team.name] = str(role)
            _audit(user, "team.member_role", membership.team, role, request)
        elif membership.source == MembershipSource.IDP:
            membership.delete()
            changes.removed.append(membership.team.name)
            _audit(user, "team.member_remove", membership.team, None, request)
    for team_id, role in wanted.items():
        if team_id in held:
            continue
        team = teams[team_id]
        Membership.objects.create(
            team=team, user_id=user.pk, role=role, source=MembershipSource.IDP
        )
        changes.added[team.name] = str(role)
        _audit(user, "team.member_add", team, role, request)
    if changes:
        recheck_user_sockets_on_commit(user.pk)
    return changes


def _audit(
    user: AbstractBaseUser, action: str, team: Team, role: Role | None, request: HttpRequest | None
) -> None:
    detail: dict[str, Any] = {"user": user.get_username(), "source": "idp"}
    if role is not None:
        detail["role"] = str(role)
    # The actor is the user signing in: the provider's groups are theirs.
    audit_record(actor=user, action=action, target=team, team=team, detail=detail, request=request)


@transaction.atomic
def sso_sign_in(
    *,
    issuer: str,
    claims: dict[str, Any],
    groups_claim: str,
    username_claim: str,
    request: HttpRequest | None = None,
) -> tuple[User, GroupChanges]:
    """The Keelson user of verified claims (made at the first sign-in), with the group
    mapping applied. Refuses (ValidationError) a deactivated user."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise ValidationError("The identity provider sent no subject ('sub').")
    users = get_user_model()._default_manager
    identity = (
        ExternalIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    created = identity is None
    if identity is None:
        wanted = claims.get(username_claim)
        username = _free_username(wanted if isinstance(wanted, str) else subject, subject)
        user = users.create_user(username=username, email=email or "")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        identity = ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        audit_record(
            actor=user,
            action="account.sso_create",
            target=user,
            detail={"user": username, "issuer": issuer},
            request=request,
        )
    user = identity.user
    if not user.is_active:
        raise ValidationError("This account is deactivated in Keelson.")
    if email and getattr(user, "email", "") != email:
        user.email = email
        user.save(update_fields=["email"])
    groups = groups_from_claims(claims, groups_claim)
    identity.groups = groups
    identity.last_sign_in = timezone.now()
    identity.save(update_fields=["groups", "last_sign_in"])
    changes = groups_apply(user=user, groups=groups, request=request)
    audit_record(
        actor=user,
        action="account.sso_login",
        target=user,
        detail={
            "groups": groups[:50],
            "new_user": created,
            "added": changes.added,
            "changed": changes.changed,
            "removed": changes.removed,
        },
        request=request,
    )
    return user, changes


def _mapping_clean(group: str, role: str) -> tuple[str, Role]:
    group = group.strip()
    if not group or len(group) > 255:
        raise ValidationError({"group": "A group name of 1 to 255 characters."})
    if role not in Role.values:
        raise ValidationError({"role": f"One of {', '.join(Role.values)}."})
    return group, Role(role)


@transaction.atomic
def group_mapping_create(
    *, group: str, team: Team, role: str, actor: AbstractBaseUser | None
) -> GroupMapping:
    """A rule: members of `group` get `role` in `team` from their next sign-in."""
    group, checked = _mapping_clean(group, role)
    if GroupMapping.objects.filter(group=group, team=team).exists():
        raise ValidationError({"group": f"A rule already maps {group!r} to team {team.name!r}."})
    mapping = GroupMapping.objects.create(group=group, team=team, role=checked)
    audit_record(
        actor=actor,
        action="group_mapping.create",
        target=mapping,
        team=team,
        detail={"group": group, "role": str(checked)},
    )
    return mapping


@transaction.atomic
def group_mapping_update(
    *, mapping: GroupMapping, role: str, actor: AbstractBaseUser | None
) -> GroupMapping:
    locked = GroupMapping.objects.select_for_update().select_related("team").get(pk=mapping.pk)
    _, checked = _mapping_clean(locked.group, role)
    before = locked.role
    locked.role = checked
    locked.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="group_mapping.update",
        target=locked,
        team=locked.team,
        detail={"group": locked.group, "before": before, "role": str(checked)},
    )
    return locked


@transaction.atomic
def group_mapping_delete(*, mapping: GroupMapping, actor: AbstractBaseUser | None) -> None:
    """Remove a rule; memberships it gave end at each member's next sign-in."""
    audit_record(
        actor=actor,
        action="group_mapping.delete",
        target=mapping,
        team=mapping.team,
        detail={"group": mapping.group, "role": mapping.role},
    )
    mapping.delete()
