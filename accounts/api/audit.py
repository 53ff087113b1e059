from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from accounts.permissions import restrict
from audit.choices import Outcome
from audit.models import AuditEvent
from core.api.filters import UtcDateTimeFilter


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor_name",
            "action",
            "outcome",
            "target_type",
            "target_id",
            "target_repr",
            "team",
            "detail",
            "remote_addr",
            "request_method",
            "request_path",
        ]
        read_only_fields = fields


class AuditEventFilterSet(django_filters.FilterSet):
    outcome = django_filters.ChoiceFilter(choices=Outcome.choices)
    since = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "outcome", "actor_name", "target_type", "target_id"]


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet[AuditEvent]):
    """The audit log: administrators see everything, team admins their teams' events."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return restrict(AuditEvent.objects.select_related("team"), self.request.user, "admin")
