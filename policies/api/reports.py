"""Compliance report API: definitions (scheduled), generated reports and their files."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.api.base import TeamOwnedModelViewSet, TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import user_has_role
from core.managed import refuse_if_managed
from policies.api.serializers import ComplianceReportSerializer, ReportDefinitionSerializer
from policies.models import ComplianceReport, ReportDefinition
from policies.services.reports import (
    ReportSpec,
    report_definition_delete,
    report_definition_save,
    report_generate,
)


def _errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


class ReportDefinitionViewSet(TeamOwnedModelViewSet[ReportDefinition]):
    """Report definitions; each is a django-celery-beat crontab (UTC) that generates the
    report, keeps it and mails it to the recipients."""

    serializer_class = ReportDefinitionSerializer
    lookup_field = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = ReportDefinition.objects.select_related("team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        authorize_create(request, field="team_name", minimum=Role.OPERATOR, doing="define reports")
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[ReportDefinition]) -> None:
        data = dict(serializer.validated_data)
        team = Team.objects.filter(name=data.pop("team_name", "")).first()
        if team is None or not user_has_role(self.request.user, team, Role.VIEWER):
            raise ValidationError({"team_name": ["No such team."]})
        self.require(team, Role.OPERATOR, "define reports")
        try:
            serializer.instance = report_definition_save(
                team=team, spec=ReportSpec(**data), actor=actor(self.request)
            )
        except DjangoValidationError as error:
            raise _errors(error) from None

    def perform_update(self, serializer: BaseSerializer[ReportDefinition]) -> None:
        definition = serializer.instance
        assert isinstance(definition, ReportDefinition)
        self.require(definition.team, Role.OPERATOR, "change reports", definition)
        refuse_if_managed(definition)
        data = dict(serializer.validated_data)
        data.pop("team_name", None)
        current = {k: getattr(definition, k) for k in ReportSpec.__dataclass_fields__}
        try:
            serializer.instance = report_definition_save(
                team=definition.team,
                spec=ReportSpec(**{**current, **data}),
                actor=actor(self.request),
                definition=definition,
            )
        except DjangoValidationError as error:
            raise _errors(error) from None

    def perform_destroy(self, instance: ReportDefinition) -> None:
        self.require(instance.team, Role.OPERATOR, "delete reports", instance)
        refuse_if_managed(instance)
        report_definition_delete(definition=instance, actor=actor(self.request))

    @extend_schema(request=None, responses={201: ComplianceReportSerializer})
    @action(detail=True, methods=["post"])
    def generate(self, request: Request, name: str | None = None) -> Response:
        """Generate the report now (for the period ending this minute) and mail it."""
        definition = self.get_object()
        self.require(definition.team, Role.OPERATOR, "generate reports", definition)
        report = report_generate(definition=definition)
        return Response(ComplianceReportSerializer(report).data, status=status.HTTP_201_CREATED)


class ComplianceReportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[ComplianceReport]
):
    """Generated reports, newest first (`?definition=<name>`), and their files."""

    serializer_class = ComplianceReportSerializer
    queryset = ComplianceReport.objects.select_related("definition__team").prefetch_related("files")
    team_path = "definition__team"

    def get_queryset(self) -> QuerySet[ComplianceReport]:
        query = super().get_queryset()
        if name := self.request.query_params.get("definition"):
            query = query.filter(definition__name=name)
        return query

    @extend_schema(responses={(200, "*/*"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"download/(?P<file_format>html|pdf|csv|json)")
    def download(self, request: Request, pk: str | None = None, file_format: str = "") -> Any:
        report = self.get_object()
        file = report.files.filter(format=file_format).first()
        if file is None:
            raise NotFound(f"This report has no {file_format} file.")
        response = HttpResponse(bytes(file.content), content_type=file.content_type)
        stamp = report.period_end.strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = (
            f'attachment; filename="{report.definition.name}-{stamp}.{file_format}"'
        )
        return response
