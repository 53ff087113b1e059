"""`/api/v1/notification-channels/` and `/api/v1/notification-deliveries/`. Admins of a
team define its channels, operators send tests and retry dead letters, viewers read."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.api.base import TeamOwnedModelViewSet, TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import user_has_role
from notifications.api.serializers import ChannelSerializer, DeliverySerializer
from notifications.choices import ChannelKind, DeliveryState
from notifications.models import Channel, Delivery
from notifications.services import (
    ChannelSpec,
    channel_delete,
    channel_save,
    channel_send_test,
    delivery_retry,
)

SPEC_FIELDS = set(ChannelSpec.__dataclass_fields__)


def _errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


class ChannelFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name")
    kind = django_filters.ChoiceFilter(choices=ChannelKind.choices)

    class Meta:
        model = Channel
        fields = ["team", "kind", "enabled"]


class ChannelViewSet(TeamOwnedModelViewSet[Channel]):
    """A team's notification channels: e-mail, generic webhook (signed JSON), Slack,
    Microsoft Teams, Alertmanager. Secrets are write-only."""

    serializer_class = ChannelSerializer
    filterset_class = ChannelFilterSet
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = Channel.objects.select_related("team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        authorize_create(request, field="team_name", minimum=Role.ADMIN, doing="add channels")
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[Channel]) -> None:
        data = dict(serializer.validated_data)
        team = Team.objects.filter(name=data.pop("team_name", "")).first()
        if team is None or not user_has_role(self.request.user, team, Role.VIEWER):
            raise ValidationError({"team_name": ["No such team."]})
        self.require(team, Role.ADMIN, "add channels")
        try:
            serializer.instance = channel_save(
                team=team,
                spec=ChannelSpec(**{k: v for k, v in data.items() if k in SPEC_FIELDS}),
                actor=actor(self.request),
            )
        except DjangoValidationError as error:
            raise _errors(error) from None

    def perform_update(self, serializer: BaseSerializer[Channel]) -> None:
        channel = serializer.instance
        assert isinstance(channel, Channel)
        self.require(channel.team, Role.ADMIN, "change channels", channel)
        data = {k: v for k, v in serializer.validated_data.items() if k in SPEC_FIELDS}
        current = ChannelSpec(
            name=channel.name,
            kind=channel.kind,
            enabled=channel.enabled,
            min_severity=channel.min_severity,
            recipients=channel.recipients,
            username=channel.username,
        )
        try:
            serializer.instance = channel_save(
                team=channel.team,
                spec=ChannelSpec(**{**current.__dict__, **data}),
                actor=actor(self.request),
                channel=channel,
            )
        except DjangoValidationError as error:
            raise _errors(error) from None

    def perform_destroy(self, instance: Channel) -> None:
        self.require(instance.team, Role.ADMIN, "delete channels", instance)
        channel_delete(channel=instance, actor=actor(self.request))

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test notification to the channel now (queued; follow the delivery)."""
        channel = self.get_object()
        self.require(channel.team, Role.OPERATOR, "send test notifications", channel)
        delivery = channel_send_test(channel=channel, actor=actor(request))
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryFilterSet(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=DeliveryState.choices)
    team = django_filters.CharFilter(field_name="team__name")

    class Meta:
        model = Delivery
        fields = ["state", "channel", "team", "status", "test"]


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[Delivery]):
    """Deliveries, newest first; dead letters (`?state=dead`, or `dead-letters/`) can be
    sent again with `retry`."""

    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilterSet
    queryset = Delivery.objects.select_related("team", "channel")

    @action(detail=False, methods=["get"], url_path="dead-letters")
    def dead_letters(self, request: Request) -> Response:
        """Deliveries that failed for good and wait for a retry."""
        query = self.filter_queryset(self.get_queryset()).filter(state=DeliveryState.DEAD)
        page = self.paginate_queryset(query)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(query, many=True).data)  # pragma: no cover

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Send a dead letter again, with a fresh set of attempts."""
        delivery = self.get_object()
        self.require(delivery.team, Role.OPERATOR, "retry deliveries", delivery)
        try:
            delivery = delivery_retry(delivery=delivery, actor=actor(request))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
