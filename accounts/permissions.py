"""Who may do what: the one place every page, API view, websocket consumer and service asks.

Access is per team. Each member holds a role in a team (viewer < operator < admin, each
including the ones below it); superusers hold every role in every team and see team-less
objects too. A request made with an API token carries the token's scope on its user
(`token_scope`), which caps the role in every team: read → viewer, write → operator,
admin → no cap (a superuser's non-admin token drops the superuser flag: accounts/
authentication.py).

Two kinds of question, as NetBox's `RestrictedQuerySet` asks them, kept simple:
- about one object: `user_has_role(user, team, role)`, or `require_role(...)`, which raises
  `PermissionDenied` (a 403 on pages and in the API);
- about many: `restrict(queryset, user, action)` keeps the rows of the teams where the user
  may do `action` (view, operate, admin); `visible_team_ids(user, role)` gives the ids.
"""

from __future__ import annotations

from typing import Literal, NoReturn, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from accounts.choices import Role, TokenScope
from accounts.models import Membership, Team
from audit.services import audit_record_denied

AnyUser = AbstractBaseUser | AnonymousUser
Action = Literal["view", "operate", "admin"]
ACTION_ROLES: dict[str, Role] = {
    "view": Role.VIEWER,
    "operate": Role.OPERATOR,
    "admin": Role.ADMIN,
}

_M = TypeVar("_M", bound=Model)


class PermissionDenied(DjangoPermissionDenied):
    """A refusal; `audited` says it is already in the audit log (the API's exception
    handler records the others)."""

    audited = False


def is_superuser(user: AnyUser | None) -> bool:
    """A superuser: every role in every team, and the objects of no team."""
    return bool(user is not None and user.is_authenticated and getattr(user, "is_superuser", False))


def _role_cap(user: AnyUser) -> Role | None:
    scope = getattr(user, "token_scope", None)
    return TokenScope(scope).role_cap if scope is not None else None


def _capped(role: Role | None, user: AnyUser) -> Role | None:
    cap = _role_cap(user)
    if role is None or cap is None or cap.includes(role):
        return role
    return cap


def user_role(user: AnyUser, team: Team | None) -> Role | None:
    """The user's role in `team` (capped by the API token's scope); a superuser is admin
    everywhere, team-less objects are visible to superusers only."""
    if not user.is_authenticated:
        return None
    if is_superuser(user):
        return _capped(Role.ADMIN, user)
    if team is None:
        return None
    role = (
        Membership.objects.filter(team=team, user_id=user.pk).values_list("role", flat=True).first()
    )
    return _capped(Role(role), user) if role else None


def user_has_role(user: AnyUser, team: Team | None, role: Role) -> bool:
    """Whether the user holds at least `role` in `team`."""
    held = user_role(user, team)
    return held is not None and held.includes(role)


def require_role(
    user: AnyUser,
    team: Team | None,
    role: Role,
    *,
    doing: str = "",
    message: str = "",
    request: HttpRequest | None = None,
    target: Model | None = None,
) -> None:
    """Refuse (PermissionDenied) unless the user holds at least `role` in `team`. With the
    request, the refusal is audited here, naming `target` (pages have no other place that
    records it); without one, the API's exception handler records it."""
    if user_has_role(user, team, role):
        return
    wanted = f"the {role.label.lower()} role in the team" + (f" to {doing}" if doing else "")
    deny(
        message or f"You need {wanted}.",
        reason=f"needs {wanted}",
        request=request,
        target=target,
    )


def require_superuser(user: AnyUser, *, message: str, request: HttpRequest | None = None) -> None:
    """Refuse what only an administrator (a superuser) may do."""
    if not is_superuser(user):
        deny(message, reason="needs an administrator", request=request)


def deny(
    message: str,
    *,
    reason: str = "",
    request: HttpRequest | None = None,
    target: Model | None = None,
) -> NoReturn:
    """Raise PermissionDenied(message), audited with `reason` when the request is given."""
    refused = PermissionDenied(message)
    if request is not None:
        audit_record_denied(request=request, reason=reason or message, target=target)
        refused.audited = True
    raise refused


def visible_team_ids(user: AnyUser, minimum_role: Role = Role.VIEWER) -> list[int]:
    """Ids of the teams where the user holds at least `minimum_role`: every team for a
    superuser, none for an anonymous user or a token whose scope is below the role."""
    if not user.is_authenticated:
        return []
    if is_superuser(user):
        return list(Team.objects.values_list("pk", flat=True))
    cap = _role_cap(user)
    if cap is not None and not cap.includes(minimum_role):
        return []
    allowed = [role for role in Role if role.includes(minimum_role)]
    return list(
        Membership.objects.filter(user_id=user.pk, role__in=allowed).values_list(
            "team_id", flat=True
        )
    )


def has_role_anywhere(user: AnyUser, role: Role) -> bool:
    """Whether the user holds at least `role` in some team (a superuser always does):
    whether to offer fleet-wide buttons and "create" links."""
    return is_superuser(user) or bool(visible_team_ids(user, role))


def restrict(
    queryset: QuerySet[_M], user: AnyUser, action: Action, *, team_path: str = "team"
) -> QuerySet[_M]:
    """The rows of `queryset` the user may `action` (view, operate, admin): those whose
    team (reached through `team_path`, e.g. "policy__team"; "pk" for teams themselves) is
    one where the user holds the role the action needs. A superuser gets every row, the
    team-less ones included; an anonymous user none."""
    role = ACTION_ROLES[action]
    if not user.is_authenticated:
        return queryset.none()
    if is_superuser(user):
        return queryset.all()
    return queryset.filter(**{f"{team_path}__in": visible_team_ids(user, role)})


def teams_for(user: AnyUser, action: Action = "view") -> QuerySet[Team]:
    """The teams where the user may `action` (choices of a form, a picker)."""
    return restrict(Team.objects.all(), user, action, team_path="pk")
