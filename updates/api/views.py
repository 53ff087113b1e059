"""Update runs API: strategies and maintenance windows (viewers read, operators change),
runs (viewers read and preview, operators create, start, pause, resume, abort, skip a
cluster and approve a stage). Team-scoped: another team's object is a 404, a write
without the role a 403 (docs/updates.md, "API")."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TeamOwnedViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from clusters.models import ClusterSet
from updates.api.serializers import (
    ApproveSerializer,
    MaintenanceWindowSerializer,
    MaintenanceWindowWriteSerializer,
    RunStartedSerializer,
    SkipSerializer,
    UpdateRunCreateSerializer,
    UpdateRunSerializer,
    UpdateStrategySerializer,
    UpdateStrategyWriteSerializer,
)
from updates.models import (
    MaintenanceWindow,
    UpdateRun,
    UpdateRunCluster,
    UpdateRunStage,
    UpdateStrategy,
)
from updates.services import (
    maintenance_window_delete,
    maintenance_window_save,
    update_run_abort,
    update_run_approve_stage,
    update_run_create,
    update_run_pause,
    update_run_preview,
    update_run_resume,
    update_run_skip_cluster,
    update_run_start,
    update_strategy_delete,
    update_strategy_save,
)

# Strategies, windows and runs are the operators' tools; viewers read and preview.
WRITE_ROLE = Role.OPERATOR


def _errors(error: DjangoValidationError) -> ValidationError:
    return ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


def _team(request: Request, doing: str) -> Team:
    team = authorize_create(request, field="team", minimum=WRITE_ROLE, doing=doing)
    if team is None:
        raise ValidationError({"team": ["Name the team."]})
    return team


def _validated(serializer: Any) -> dict[str, Any]:
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    data.pop("team", None)
    return data


class UpdateStrategyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[UpdateStrategy]
):
    """A team's reusable strategies: ordered stages of groups (docs/updates.md)."""

    serializer_class = UpdateStrategySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = UpdateStrategy.objects.select_related("team").order_by("team__name", "name")

    def _save(self, request: Request, strategy: UpdateStrategy, data: dict[str, Any]) -> Any:
        for field in ("name", "description", "stages"):
            if field in data:
                setattr(strategy, field, data[field])
        try:
            return update_strategy_save(actor=actor(request), strategy=strategy)
        except DjangoValidationError as error:
            raise _errors(error) from None

    @extend_schema(request=UpdateStrategyWriteSerializer, responses={201: UpdateStrategySerializer})
    def create(self, request: Request) -> Response:
        team = _team(request, "manage update strategies")
        data = _validated(UpdateStrategyWriteSerializer(data=request.data))
        for required in ("name", "stages"):
            if required not in data:
                raise ValidationError({required: ["This field is required."]})
        strategy = self._save(request, UpdateStrategy(team=team), data)
        return Response(UpdateStrategySerializer(strategy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateStrategyWriteSerializer, responses=UpdateStrategySerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        strategy = self.get_object()
        self.require(strategy.team, WRITE_ROLE, "manage update strategies", strategy)
        payload = UpdateStrategyWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        if payload.validated_data.get("team", strategy.team.name) != strategy.team.name:
            raise ValidationError({"team": ["A strategy cannot move to another team."]})
        strategy = self._save(request, strategy, _validated(payload))
        return Response(UpdateStrategySerializer(strategy).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        strategy = self.get_object()
        self.require(strategy.team, WRITE_ROLE, "manage update strategies", strategy)
        update_strategy_delete(actor=actor(request), strategy=strategy)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MaintenanceWindowViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[MaintenanceWindow]
):
    """Weekly windows per cluster set: a run starts a cluster's change only inside one."""

    serializer_class = MaintenanceWindowSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = MaintenanceWindow.objects.select_related("team", "cluster_set").order_by(
        "team__name", "name"
    )

    def _save(self, request: Request, window: MaintenanceWindow, data: dict[str, Any]) -> Any:
        if "cluster_set" in data:
            # An unknown name leaves no set: the service names it with the other errors.
            found = ClusterSet.objects.filter(team=window.team, name=data.pop("cluster_set"))
            window.cluster_set_id = found.values_list("pk", flat=True).first()  # type: ignore[assignment]
        for field, value in data.items():
            setattr(window, field, value)
        try:
            return maintenance_window_save(actor=actor(request), window=window)
        except DjangoValidationError as error:
            raise _errors(error) from None

    @extend_schema(
        request=MaintenanceWindowWriteSerializer, responses={201: MaintenanceWindowSerializer}
    )
    def create(self, request: Request) -> Response:
        team = _team(request, "manage maintenance windows")
        data = _validated(MaintenanceWindowWriteSerializer(data=request.data))
        for required in ("name", "cluster_set", "days", "start_time", "duration_minutes"):
            if required not in data:
                raise ValidationError({required: ["This field is required."]})
        window = self._save(request, MaintenanceWindow(team=team), data)
        return Response(MaintenanceWindowSerializer(window).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MaintenanceWindowWriteSerializer, responses=MaintenanceWindowSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        window = self.get_object()
        self.require(window.team, WRITE_ROLE, "manage maintenance windows", window)
        payload = MaintenanceWindowWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        if payload.validated_data.get("team", window.team.name) != window.team.name:
            raise ValidationError({"team": ["A window cannot move to another team."]})
        window = self._save(request, window, _validated(payload))
        return Response(MaintenanceWindowSerializer(window).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        window = self.get_object()
        self.require(window.team, WRITE_ROLE, "manage maintenance windows", window)
        maintenance_window_delete(actor=actor(request), window=window)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UpdateRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamOwnedViewSet[UpdateRun]
):
    """Update runs: a draft is created and previewed, then started (an Operation)."""

    serializer_class = UpdateRunSerializer
    http_method_names = ["get", "post", "head", "options"]
    queryset = UpdateRun.objects.select_related("team", "strategy", "created_by").prefetch_related(
        Prefetch(
            "run_stages",
            queryset=UpdateRunStage.objects.select_related("approved_by").order_by("index"),
        ),
        Prefetch(
            "run_clusters",
            queryset=UpdateRunCluster.objects.order_by("stage_index", "position"),
        ),
    )

    @extend_schema(request=UpdateRunCreateSerializer, responses={201: UpdateRunSerializer})
    def create(self, request: Request) -> Response:
        team = _team(request, "create update runs")
        data = _validated(UpdateRunCreateSerializer(data=request.data))
        strategy = UpdateStrategy.objects.filter(team=team, name=data["strategy"]).first()
        if strategy is None:
            raise ValidationError({"strategy": ["No such strategy in the team."]})
        try:
            run = update_run_create(
                actor=actor(request),
                team=team,
                name=data["name"],
                strategy=strategy,
                change_kind=data["change_kind"],
                change_params=data.get("change_params") or {},
                gates=data.get("gates"),
                scope=data.get("scope"),
            )
        except DjangoValidationError as error:
            raise _errors(error) from None
        shown = self.get_queryset().get(pk=run.pk)
        return Response(UpdateRunSerializer(shown).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """Stages → groups → clusters with from/to, skip reasons, end of life, next window
        openings, the expected duration and the change's impact."""
        return Response(update_run_preview(run=self.get_object()))

    def _act(
        self,
        request: Request,
        doing: str,
        call: Any,
        payload: type[SkipSerializer] | type[ApproveSerializer] | None = None,
        argument: str = "",
    ) -> Response:
        """Authorize (before reading the body), then call the service with the body's one
        field as `argument`."""
        run = self.get_object()
        self.require(run.team, WRITE_ROLE, doing, run)
        kwargs: dict[str, Any] = {}
        if payload is not None:
            body = payload(data=request.data)
            body.is_valid(raise_exception=True)
            kwargs[argument] = next(iter(body.validated_data.values()))
        try:
            call(actor=actor(request), run=run, **kwargs)
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(UpdateRunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=None, responses={202: RunStartedSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        """Start a draft: its clusters are planned again, then changed stage by stage."""
        run = self.get_object()
        self.require(run.team, WRITE_ROLE, "start update runs", run)
        try:
            operation = update_run_start(actor=actor(request), run=run)
        except DjangoValidationError as error:
            raise _errors(error) from None
        return Response(
            {"run": str(run.pk), "operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses=UpdateRunSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """No cluster starts until resumed; changes under way finish."""
        return self._act(request, "pause update runs", update_run_pause)

    @extend_schema(request=None, responses=UpdateRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, "resume update runs", update_run_resume)

    @extend_schema(request=None, responses=UpdateRunSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str | None = None) -> Response:
        """Stop: no cluster starts, changes under way finish, nothing is reverted."""
        return self._act(request, "abort update runs", update_run_abort)

    @extend_schema(request=SkipSerializer, responses=UpdateRunSerializer)
    @action(detail=True, methods=["post"])
    def skip(self, request: Request, pk: str | None = None) -> Response:
        """Leave out a cluster that has not started changing."""
        return self._act(
            request,
            "skip clusters of update runs",
            update_run_skip_cluster,
            SkipSerializer,
            "cluster_name",
        )

    @extend_schema(request=ApproveSerializer, responses=UpdateRunSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Let a stage that waits for approval start."""
        return self._act(
            request,
            "approve update run stages",
            update_run_approve_stage,
            ApproveSerializer,
            "stage_index",
        )
