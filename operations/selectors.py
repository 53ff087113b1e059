from __future__ import annotations

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.choices import Role
from accounts.permissions import AnyUser, is_superuser, restrict, user_has_role
from operations.models import Operation


def operation_list(*, user: AnyUser) -> QuerySet[Operation]:
    """Operations the user may see: their own and those of teams they belong to."""
    visible = restrict(Operation.objects.all(), user, "view")
    if not user.is_authenticated or is_superuser(user):
        return visible  # none or every one
    return visible | Operation.objects.filter(created_by_id=user.pk)


def operation_get(*, user: AnyUser, operation_id: UUID | str) -> Operation | None:
    try:
        return operation_list(user=user).filter(pk=operation_id).first()
    except (ValidationError, ValueError, TypeError):
        return None  # not a UUID


def operation_may_cancel(*, user: AnyUser, operation: Operation) -> bool:
    """Who may cancel: the operation's creator or an operator of its team (API and page)."""
    if operation.created_by_id is not None and operation.created_by_id == user.pk:
        return True
    return user_has_role(user, operation.team, Role.OPERATOR)
