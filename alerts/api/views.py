"""Alerts API: rules (viewers read, admins change), alerts with their history (viewers
read, operators acknowledge) and silences (viewers read, operators create and expire).
Team-scoped: another team's object is a 404, a write without the role a 403."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from alerts.api.serializers import (
    AlertRuleSerializer,
    AlertRuleWriteSerializer,
    AlertSerializer,
    SilenceSerializer,
    SilenceWriteSerializer,
)
from alerts.filtersets import AlertFilterSet, AlertRuleFilterSet, SilenceFilterSet
from alerts.models import Alert, AlertRule, Silence
from alerts.services.lifecycle import alert_acknowledge
from alerts.services.rules import RuleSpec, alert_rule_create, alert_rule_delete, alert_rule_update
from alerts.services.silences import silence_create, silence_expire


def _errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


def _team(request: Request, minimum: Role, doing: str) -> Team:
    team = authorize_create(request, field="team", minimum=minimum, doing=doing)
    if team is None:
        raise ValidationError({"team": ["Name the team."]})
    return team


class AlertRuleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[AlertRule]
):
    """A team's alert rules. `params` depend on `kind` (docs/user-guide.md, "Alerts")."""

    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilterSet
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = AlertRule.objects.select_related("team", "cluster_set").order_by(
        "team__name", "name"
    )

    @extend_schema(request=AlertRuleWriteSerializer, responses={201: AlertRuleSerializer})
    def create(self, request: Request) -> Response:
        team = _team(request, Role.ADMIN, "manage alert rules")
        payload = AlertRuleWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data.pop("team", None)
        for required in ("name", "kind"):
            if required not in data:
                raise ValidationError({required: ["This field is required."]})
        try:
            rule = alert_rule_create(actor=actor(request), team=team, spec=RuleSpec(**data))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AlertRuleWriteSerializer, responses=AlertRuleSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        rule = self.get_object()
        self.require(rule.team, Role.ADMIN, "manage alert rules", rule)
        payload = AlertRuleWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        if data.pop("team", rule.team.name) != rule.team.name:
            raise ValidationError({"team": ["A rule cannot move to another team."]})
        try:
            rule = alert_rule_update(actor=actor(request), rule=rule, spec=RuleSpec(**data))
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(AlertRuleSerializer(rule).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        rule = self.get_object()
        self.require(rule.team, Role.ADMIN, "manage alert rules", rule)
        alert_rule_delete(actor=actor(request), rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[Alert]):
    """Alerts, firing and past: `state` is firing, acknowledged, silenced or resolved."""

    serializer_class = AlertSerializer
    filterset_class = AlertFilterSet
    queryset = Alert.objects.select_related("team", "rule", "cluster", "acknowledged_by")

    @extend_schema(request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Someone is on it: no more repeats (its resolution is still notified)."""
        alert = self.get_object()
        self.require(alert.team, Role.OPERATOR, "acknowledge alerts", alert)
        try:
            alert = alert_acknowledge(actor=actor(request), alert=alert)
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(AlertSerializer(self.get_queryset().get(pk=alert.pk)).data)


class SilenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[Silence]):
    """Silences: matchers (name=value, name!=value, name=~regex, name!~regex) that mute
    the team's matching alerts until `ends_at`, with a comment."""

    serializer_class = SilenceSerializer
    filterset_class = SilenceFilterSet
    http_method_names = ["get", "post", "head", "options"]
    queryset = Silence.objects.select_related("team", "created_by")

    @extend_schema(request=SilenceWriteSerializer, responses={201: SilenceSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = _team(request, Role.OPERATOR, "silence alerts")
        payload = SilenceWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        try:
            silence = silence_create(
                actor=actor(request),
                team=team,
                matchers=data["matchers"],
                comment=data["comment"],
                ends_at=data["ends_at"],
                starts_at=data.get("starts_at"),
            )
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=SilenceSerializer)
    @action(detail=True, methods=["post"])
    def expire(self, request: Request, pk: str | None = None) -> Response:
        """End the silence now."""
        silence = self.get_object()
        self.require(silence.team, Role.OPERATOR, "silence alerts", silence)
        try:
            silence = silence_expire(actor=actor(request), silence=silence)
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(SilenceSerializer(silence).data)
