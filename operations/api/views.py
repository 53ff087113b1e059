from __future__ import annotations

import django_filters
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import deny
from operations.api.serializers import OperationLogLineSerializer, OperationSerializer
from operations.choices import OperationState
from operations.models import Operation
from operations.selectors import operation_list, operation_may_cancel
from operations.services import operation_cancel


def _user(request: Request) -> AbstractBaseUser:
    assert isinstance(request.user, AbstractBaseUser)  # IsAuthenticated ran
    return request.user


class OperationFilterSet(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=OperationState.choices)

    class Meta:
        model = Operation
        fields = ["kind", "state", "target_type", "target_id"]


class OperationViewSet(viewsets.ReadOnlyModelViewSet[Operation]):
    """Long-running work: provisioning, rollouts, evaluations, reports."""

    serializer_class = OperationSerializer
    filterset_class = OperationFilterSet

    def get_queryset(self) -> QuerySet[Operation]:
        return operation_list(user=self.request.user).select_related("team", "created_by")

    @extend_schema(responses=OperationLogLineSerializer(many=True))
    @action(detail=True, methods=["get"])
    def log(self, request: Request, pk: str | None = None) -> Response:
        operation = self.get_object()
        lines = list(operation.log_lines.all()[: settings.KEELSON_OPERATION_LOG_LINES])
        return Response(OperationLogLineSerializer(lines, many=True).data)

    @extend_schema(request=None, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        operation = self.get_object()
        if not operation_may_cancel(user=request.user, operation=operation):
            deny(
                "Only the operation's creator or a team operator can cancel it.",
                reason="cancel needs the creator or a team operator",
                request=request,
                target=operation,
            )
        operation = operation_cancel(operation=operation, actor=_user(request))
        return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)
