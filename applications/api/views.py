"""Applications API: create with manifests, placement, overrides and rollout strategy;
simulate (what-if), decide, roll out, per-cluster status, versions, delete."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import user_has_role
from applications.models import Application, ApplicationVersion, ClusterWork, Placement
from applications.rollout import (
    application_delete_start,
    application_evict_everywhere_start,
    rollout_start,
)
from applications.services import (
    application_create,
    application_update,
    application_version_add,
    placement_decide,
    placement_simulate,
)
from core.managed import refuse_if_managed
from operations.models import Operation


class PlacementStatusSerializer(serializers.ModelSerializer[Placement]):
    """Scheduled, or Unschedulable: nothing fits, and the application is kept running where
    it is until something fits or its removal is confirmed (`evict-everywhere`)."""

    state = serializers.CharField(source="status")
    reason = serializers.CharField(source="status_reason")
    since = serializers.DateTimeField(source="status_since")

    class Meta:
        model = Placement
        fields = ["state", "reason", "since"]
        read_only_fields = fields


class ApplicationSerializer(serializers.ModelSerializer[Application]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    placement = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    placement_status = serializers.SerializerMethodField()

    class Meta:
        model = Application
        fields = [
            "name",
            "team",
            "namespace",
            "description",
            "placement",
            "overrides",
            "rollout",
            "version",
            "placement_status",
            "created_at",
        ]
        read_only_fields = fields

    def get_placement(self, obj: Application) -> dict[str, Any]:
        return dict(obj.placement.spec)

    def get_version(self, obj: Application) -> int:
        # The viewset's queryset annotates it: a list runs no query per row.
        if "latest_version" in obj.__dict__:
            return int(obj.__dict__["latest_version"] or 0)
        return int(obj.versions.values_list("number", flat=True).first() or 0)

    @extend_schema_field(PlacementStatusSerializer)
    def get_placement_status(self, obj: Application) -> dict[str, Any]:
        return PlacementStatusSerializer(obj.placement).data


class ApplicationCreateSerializer(serializers.Serializer[Any]):
    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=63)
    namespace = serializers.SlugField(max_length=63)
    description = serializers.CharField(allow_blank=True, default="")
    manifests = serializers.CharField(trim_whitespace=False, help_text="Multi-document YAML.")
    placement = serializers.DictField(required=False, help_text="The placement spec.")
    overrides = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Per-cluster override rules."
    )
    rollout = serializers.DictField(required=False, help_text="The rollout strategy.")


class ApplicationUpdateSerializer(serializers.Serializer[Any]):
    description = serializers.CharField(allow_blank=True, required=False)
    placement = serializers.DictField(required=False)
    overrides = serializers.ListField(child=serializers.DictField(), required=False)
    rollout = serializers.DictField(required=False)


class VersionSerializer(serializers.Serializer[Any]):
    manifests = serializers.CharField(trim_whitespace=False, help_text="Multi-document YAML.")


class RolloutRequestSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="The newest version when omitted."
    )


class WorkSerializer(serializers.ModelSerializer[ClusterWork]):
    cluster: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = ClusterWork
        fields = [
            "cluster",
            "state",
            "desired_version",
            "applied_version",
            "replicas",
            "desired_replicas",
            "available_replicas",
            "message",
            "drift_corrections",
            "applied_objects",
            "synced_at",
        ]
        read_only_fields = fields


class EvictEverywhereSerializer(serializers.Serializer[Any]):
    clusters = serializers.ListField(
        child=serializers.CharField(max_length=253),
        allow_empty=False,
        max_length=10_000,
        help_text="Every cluster the application runs on, by name: the confirmation.",
    )


class OperationRefSerializer(serializers.Serializer[Any]):
    operation = serializers.UUIDField()
    state = serializers.CharField()


class SimulateSerializer(serializers.Serializer[Any]):
    placement = serializers.DictField(
        required=False, help_text="A what-if placement; the saved one when omitted."
    )


# `simulate` lists this many clusters per predicate (excluded) and per reason (not
# selected) unless asked for every one with ?exclusions=all.
SIMULATE_FIRST = 10


class ExclusionSerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField()
    predicate = serializers.CharField(
        help_text="Healthy, LabelSelector, FieldSelector, TaintToleration or CapacityFits."
    )
    reason = serializers.CharField()


class NotSelectedSerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField()
    reason = serializers.CharField()


class SimulateSummarySerializer(serializers.Serializer[Any]):
    excluded = serializers.DictField(
        child=serializers.IntegerField(), help_text="Excluded clusters per predicate."
    )
    not_selected = serializers.DictField(
        child=serializers.IntegerField(), help_text="Feasible clusters not selected per reason."
    )
    complete = serializers.BooleanField(
        help_text="Whether `excluded` and `not_selected` list every cluster."
    )


class SimulateResultSerializer(serializers.Serializer[Any]):
    chosen = serializers.ListField(
        child=serializers.DictField(),
        help_text="cluster, rank, score, scores per prioritizer, replicas (and tolerated).",
    )
    excluded = ExclusionSerializer(
        many=True,
        help_text=f"The first {SIMULATE_FIRST} per predicate by name (every one with "
        "?exclusions=all).",
    )
    not_selected = NotSelectedSerializer(
        many=True,
        help_text=f"The first {SIMULATE_FIRST} per reason by rank (every one with "
        "?exclusions=all).",
    )
    warnings = serializers.ListField(child=serializers.CharField())
    unschedulable = serializers.IntegerField(
        help_text="Divided replicas that fit in no chosen cluster (0: every one placed)."
    )
    summary = SimulateSummarySerializer()


def _django_errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


def _operation_ref(operation: Operation) -> Response:
    return Response(
        {"operation": str(operation.pk), "state": operation.state},
        status=status.HTTP_202_ACCEPTED,
    )


class ApplicationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[Application]
):
    serializer_class = ApplicationSerializer
    lookup_field = "name"
    queryset = Application.objects.select_related("team", "placement").annotate(
        latest_version=Subquery(
            ApplicationVersion.objects.filter(application=OuterRef("pk"))
            .order_by("-number")
            .values("number")[:1]
        )
    )

    @extend_schema(request=ApplicationCreateSerializer, responses={201: ApplicationSerializer})
    def create(self, request: Request) -> Response:
        authorize_create(request, field="team", minimum=Role.OPERATOR, doing="create applications")
        payload = ApplicationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        team = Team.objects.filter(name=data.pop("team")).first()
        if team is None or not user_has_role(request.user, team, Role.VIEWER):
            raise ValidationError({"team": ["No such team."]})
        self.require(team, Role.OPERATOR, "create applications")
        try:
            application = application_create(actor=actor(request), team=team, **data)
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return Response(ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=SimulateSerializer,
        responses=SimulateResultSerializer,
        parameters=[
            OpenApiParameter(
                "exclusions",
                str,
                enum=["summary", "all"],
                description=f"`summary` (default): the first {SIMULATE_FIRST} excluded clusters "
                f"per predicate and not selected per reason, with counts; `all`: every one.",
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def simulate(self, request: Request, name: str | None = None) -> Response:
        """Dry run: which clusters, with what scores and replicas, and why the others are
        excluded or not selected (the first few per reason with counts of all; every one
        with ?exclusions=all). Nothing is stored or applied; `decide` stores every one."""
        application = self.get_object()
        exclusions = request.query_params.get("exclusions", "summary")
        if exclusions not in ("summary", "all"):
            raise ValidationError({"exclusions": ["summary or all."]})
        payload = SimulateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            decision = placement_simulate(
                application=application, spec=payload.validated_data.get("placement")
            )
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return Response(decision.summarized(None if exclusions == "all" else SIMULATE_FIRST))

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, name: str | None = None) -> Response:
        """Compute and store a new decision version."""
        application = self.get_object()
        self.require(application.team, Role.OPERATOR, "place applications", application)
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

    @extend_schema(request=ApplicationUpdateSerializer, responses=ApplicationSerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        """Change placement, overrides, rollout strategy or description. The clusters are
        unchanged until the next rollout."""
        application = self.get_object()
        self.require(application.team, Role.OPERATOR, "change applications", application)
        refuse_if_managed(application)
        payload = ApplicationUpdateSerializer(data=request.data, partial=True)
        unknown = sorted(set(request.data) - set(payload.fields))
        if unknown:
            raise ValidationError({key: ["This field cannot be changed."] for key in unknown})
        payload.is_valid(raise_exception=True)
        try:
            updated = application_update(
                actor=actor(request), application=application, changes=dict(payload.validated_data)
            )
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return Response(ApplicationSerializer(updated).data)

    @extend_schema(request=None, responses={202: OperationRefSerializer})
    def destroy(self, request: Request, name: str | None = None) -> Response:
        """Remove the application from every cluster, then delete it (an Operation)."""
        application = self.get_object()
        self.require(application.team, Role.OPERATOR, "delete applications", application)
        refuse_if_managed(application)
        try:
            operation = application_delete_start(application=application, actor=actor(request))
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return _operation_ref(operation)

    @extend_schema(
        methods=["GET"], request=None, responses=OpenApiTypes.OBJECT, summary="List versions"
    )
    @extend_schema(
        methods=["POST"], request=VersionSerializer, responses={201: OpenApiTypes.OBJECT}
    )
    @action(detail=True, methods=["get", "post"])
    def versions(self, request: Request, name: str | None = None) -> Response:
        """GET: the version history. POST: add a version (manifests checked per document)."""
        application = self.get_object()
        if request.method == "POST":
            self.require(application.team, Role.OPERATOR, "add versions", application)
            refuse_if_managed(application)
            payload = VersionSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            try:
                version = application_version_add(
                    actor=actor(request),
                    application=application,
                    manifests=payload.validated_data["manifests"],
                )
            except DjangoValidationError as error:
                raise _django_errors(error) from None
            return Response(
                {"number": version.number, "created_at": version.created_at},
                status=status.HTTP_201_CREATED,
            )
        return Response(
            [
                {"number": v.number, "created_at": v.created_at, "manifests": v.manifests}
                for v in application.versions.all()[:50]
            ]
        )

    @extend_schema(request=RolloutRequestSerializer, responses={202: OperationRefSerializer})
    @action(detail=True, methods=["post"])
    def rollout(self, request: Request, name: str | None = None) -> Response:
        """Decide the placement now and roll a version out to it under the application's
        rollout strategy. Follow the returned operation for progress."""
        application = self.get_object()
        self.require(application.team, Role.OPERATOR, "roll out applications", application)
        payload = RolloutRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            operation = rollout_start(
                application=application,
                actor=actor(request),
                version=payload.validated_data.get("version"),
            )
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return _operation_ref(operation)

    @extend_schema(request=EvictEverywhereSerializer, responses={202: OperationRefSerializer})
    @action(detail=True, methods=["post"], url_path="evict-everywhere")
    def evict_everywhere(self, request: Request, name: str | None = None) -> Response:
        """Remove the application from every cluster it runs on; `clusters` must name exactly
        those clusters. The application is kept (a later rollout places it again). This is
        the only way to carry out a placement that chose no cluster (Unschedulable)."""
        application = self.get_object()
        self.require(application.team, Role.OPERATOR, "evict applications", application)
        payload = EvictEverywhereSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            operation = application_evict_everywhere_start(
                application=application,
                actor=actor(request),
                clusters=payload.validated_data["clusters"],
            )
        except DjangoValidationError as error:
            raise _django_errors(error) from None
        return _operation_ref(operation)

    @extend_schema(responses=WorkSerializer(many=True))
    @action(detail=True, methods=["get"])
    def status(self, request: Request, name: str | None = None) -> Response:
        """Where the application runs and how it is doing in each cluster."""
        application = self.get_object()
        works = ClusterWork.objects.filter(application=application).select_related("cluster")
        return Response(WorkSerializer(works.order_by("cluster__name"), many=True).data)
