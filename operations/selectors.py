from __future__ import annotations

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from accounts.choices import Role
from accounts.selectors import AnyUser, team_ids_with_role, user_has_role
from operations.models import Operation


def operation_list(*, user: AnyUser) -> QuerySet[Operation]:
    """Operations the user may see: their own and those of teams they belong to."""
    if not user.is_authenticated:
        return Operation.objects.none()
    if getattr(user, "is_superuser", False):
        return Operation.objects.all()
    teams = team_ids_with_role(user=user, minimum=Role.VIEWER)
    return Operation.objects.filter(Q(created_by_id=user.pk) | Q(team_id__in=teams))


def operation_get(*, user: AnyUser, operation_id: UUID | str) -> Operation | None:
    try:
        return operation_list(user=user).filter(pk=operation_id).first()
    except (ValidationError, ValueError, TypeError):
        return None  # not a UUID


def operation_may_cancel(*, user: AnyUser, operation: Operation) -> bool:
    """Who may cancel: the operation's creator or an operator of its team (API and page)."""
    if operation.created_by_id is not None and operation.created_by_id == user.pk:
        return True
    return user_has_role(user=user, team=operation.team, minimum=Role.OPERATOR)
