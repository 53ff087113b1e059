"""Applications API: create with manifests and a placement, simulate (what-if), decide."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from clusters.api.permissions import actor, require_role
from fleet.accounts.choices import Role
from fleet.accounts.models import Team
from fleet.accounts.selectors import team_ids_with_role, user_has_role
from fleet.placement.models import Application
from fleet.placement.services import application_create, placement_decide, placement_simulate


class ApplicationSerializer(serializers.ModelSerializer[Application]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    placement = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()

    class Meta:
        model = Application
        fields = ["name", "team", "namespace", "description", "placement", "version", "created_at"]
        read_only_fields = fields

    def get_placement(self, obj: Application) -> dict[str, Any]:
        return dict(obj.placement.spec)

    def get_version(self, obj: Application) -> int:
        return int(obj.versions.values_list("number", flat=True).first() or 0)


class ApplicationCreateSerializer(serializers.Serializer[Any]):
    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=63)
    namespace = serializers.SlugField(max_length=63)
    description = serializers.CharField(allow_blank=True, default="")
    manifests = serializers.CharField(trim_whitespace=False, help_text="Multi-document YAML.")
    placement = serializers.DictField(required=False, help_text="The placement spec.")


class SimulateSerializer(serializers.Serializer[Any]):
    placement = serializers.DictField(
        required=False, help_text="A what-if placement; the saved one when omitted."
    )


def _django_errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


class ApplicationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Application]
):
    serializer_class = ApplicationSerializer
    lookup_field = "name"

    def get_queryset(self) -> QuerySet[Application]:
        query = Application.objects.select_related("team", "placement")
        if self.request.user.is_superuser:
            return query
        return query.filter(
            team_id__in=team_ids_with_role(user=self.request.user, minimum=Role.VIEWER)
        )

    @extend_schema(request=ApplicationCreateSerializer, responses={201: ApplicationSerializer})
    def create(self, request: Request) -> Response:
        payload = ApplicationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        team = Team.objects.filter(name=data.pop("team")).first()
        if team is None or not user_has_role(user=request.user, team=team, minimum=Role.VIEWER):
            raise ValidationError({"team": ["No such team."]})
        require_role(request, team, Role.OPERATOR, "create applications")
        try:
            application = application_create(actor=actor(request), team=team, **data)
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return Response(ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SimulateSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def simulate(self, request: Request, name: str | None = None) -> Response:
        """Dry run: which clusters, with what scores and replicas, and why each other
        cluster is excluded. Nothing is stored or applied."""
        application = self.get_object()
        payload = SimulateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            decision = placement_simulate(
                application=application, spec=payload.validated_data.get("placement")
            )
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return Response(decision.as_json())

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, name: str | None = None) -> Response:
        """Compute and store a new decision version."""
        application = self.get_object()
        require_role(request, application.team, Role.OPERATOR, "place applications")
        stored = placement_decide(application=application, actor=actor(request))
        body = {"version": stored.version, **stored.decision}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def decisions(self, request: Request, name: str | None = None) -> Response:
        application = self.get_object()
        rows = application.decisions.all()[:20]
        return Response(
            [
                {
                    "version": d.version,
                    "application_version": d.application_version,
                    "created_at": d.created_at,
                    **d.decision,
                }
                for d in rows
            ]
        )
