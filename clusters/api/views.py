from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
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
from clusters.agentmanifest import agent_objects, as_yaml, push_identity_objects
from clusters.api.provisioning import (
    ClusterCreateSerializer,
    PoolUpdateSerializer,
    ScaleSerializer,
    UpgradeSerializer,
    create_cluster_response,
)
from clusters.api.serializers import (
    BootstrapTokenSerializer,
    ClusterRegisteredSerializer,
    ClusterRegisterSerializer,
    ClusterSerializer,
    ClusterSetSerializer,
    ClusterUpdateSerializer,
    ContextSerializer,
    KubeconfigSerializer,
    TransitionSerializer,
)
from clusters.choices import ClusterMode
from clusters.filtersets import ClusterFilterSet
from clusters.models import Cluster, ClusterInventory, ClusterProvisioning, ClusterSet
from clusters.providers.registry import get_provider
from clusters.selectors import cluster_list
from clusters.services.history import health_series
from clusters.services.lifecycle import (
    cluster_deregister,
    cluster_set_clusters,
    cluster_set_delete,
    cluster_set_save,
    cluster_update,
)
from clusters.services.provisioning import (
    cluster_destroy,
    cluster_pool_update,
    cluster_scale,
    cluster_upgrade,
)
from clusters.services.refresh import cluster_probe_now
from clusters.services.registration import (
    ClusterFields,
    RegistrationError,
    agent_tokens_revoke,
    bootstrap_token_issue,
    cluster_register_pull,
    cluster_register_push,
    connection_from_input,
)
from core.api.filters import as_utc
from core.managed import refuse_if_managed
from kube.kubeconfig import KubeconfigError, list_contexts
from operations.api.serializers import OperationSerializer


def agent_command(request: Request | None, token: str) -> str:
    hub = request.build_absolute_uri("/").rstrip("/") if request is not None else "https://HUB"
    return f"python -m agent --hub {hub} --token {token}"


def registration_error(error: RegistrationError) -> ValidationError:
    """A 400 whose `code` names the failed check and whose field holds the message."""
    refused = ValidationError({error.field or "connection": [error.message]})
    refused.keelson_code = error.code  # type: ignore[attr-defined]
    return refused


class ClusterViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TeamOwnedViewSet[Cluster],
):
    """Member clusters: registration (push and pull), labels and taints, health, history,
    deregistration. Credentials are write-only: no response ever contains one."""

    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9-]+"
    queryset = Cluster.objects.select_related("team").order_by("name")

    @extend_schema(request=ClusterRegisterSerializer, responses={201: ClusterRegisteredSerializer})
    def create(self, request: Request) -> Response:
        authorize_create(request, field="team", minimum=Role.OPERATOR, doing="register clusters")
        payload = ClusterRegisterSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        team = Team.objects.filter(name=data.pop("team")).first()
        if team is None or not user_has_role(request.user, team, Role.VIEWER):
            raise ValidationError({"team": ["No such team."]})
        self.require(team, Role.OPERATOR, "register clusters")
        fields = ClusterFields.from_data(name=data["name"], team=team, data=data)
        try:
            if data["mode"] == ClusterMode.PULL:
                cluster, token = cluster_register_pull(actor=request.user, fields=fields)  # type: ignore[arg-type]
                body: dict[str, Any] = {
                    "cluster": ClusterSerializer(cluster).data,
                    "warnings": [],
                    "bootstrap_token": token,
                    "agent_command": agent_command(request, token),
                }
                return Response(body, status=status.HTTP_201_CREATED)
            spec, kind = connection_from_input(
                kubeconfig=data.get("kubeconfig", ""),
                context=data.get("kubeconfig_context", ""),
                server=data.get("server", ""),
                token=data.get("token", ""),
                ca_data=data.get("ca_data", ""),
                insecure_skip_tls_verify=data["insecure_skip_tls_verify"],
            )
            cluster, report = cluster_register_push(
                actor=actor(request),
                fields=fields,
                spec=spec,
                kind=kind,
                context=data.get("kubeconfig_context", ""),
            )
        except RegistrationError as error:
            raise registration_error(error) from None
        warnings = (
            [
                "Read-only access: placement and policy enforcement will fail on this "
                f"cluster (missing: {', '.join(report.missing_write)})."
            ]
            if report.read_only
            else []
        )
        body = {"cluster": ClusterSerializer(cluster).data, "warnings": warnings}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=ClusterUpdateSerializer, responses=ClusterSerializer)
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        self.require(cluster.team, Role.OPERATOR, "change clusters", cluster)
        payload = ClusterUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        cluster = cluster_update(
            cluster=cluster,
            actor=actor(request),
            changes=dict(payload.validated_data),
        )
        return Response(ClusterSerializer(cluster).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "cleanup",
                OpenApiTypes.BOOL,
                description="Also remove every object Keelson put in the cluster.",
            )
        ],
        request=None,
        responses={202: OperationSerializer},
    )
    def destroy(self, request: Request, name: str | None = None) -> Response:
        """Deregister: an Operation removes (optionally) Keelson's objects, then the cluster."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "deregister clusters", cluster)
        cleanup = str(request.query_params.get("cleanup", "")).lower() in ("1", "true", "yes")
        operation = cluster_deregister(cluster=cluster, actor=request.user, cleanup=cleanup)  # type: ignore[arg-type]
        return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ClusterCreateSerializer, responses={202: OperationSerializer})
    @action(detail=False, methods=["post"])
    def provision(self, request: Request) -> Response:
        """Create a cluster through a provider (local, capi), from a spec or a template:
        202 with the Operation that builds and registers it."""
        authorize_create(request, field="team", minimum=Role.OPERATOR, doing="create clusters")
        payload = ClusterCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return create_cluster_response(request, dict(payload.validated_data))

    @extend_schema(request=ScaleSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def scale(self, request: Request, name: str | None = None) -> Response:
        """Set a node pool's size."""
        cluster = self.get_object()
        self.require(cluster.team, Role.OPERATOR, "scale clusters", cluster)
        payload = ScaleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        return _lifecycle(
            request,
            lambda: cluster_scale(
                actor=actor(request), cluster=cluster, pool=data["pool"], count=data["count"]
            ),
        )

    @extend_schema(request=PoolUpdateSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def update_pool(self, request: Request, name: str | None = None) -> Response:
        """Replace a node pool's nodes one by one with a new image, instance type and/or
        kubelet version, draining each through the Eviction API."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "update node pools", cluster)
        payload = PoolUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        return _lifecycle(
            request,
            lambda: cluster_pool_update(
                actor=actor(request),
                cluster=cluster,
                pool=data["pool"],
                image=data.get("image"),
                instance_type=data.get("instance_type"),
                version=data.get("version"),
            ),
        )

    @extend_schema(request=UpgradeSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def upgrade(self, request: Request, name: str | None = None) -> Response:
        """Upgrade the cluster's Kubernetes version."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "upgrade clusters", cluster)
        payload = UpgradeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = payload.validated_data["kubernetes_version"]
        return _lifecycle(
            request, lambda: cluster_upgrade(actor=actor(request), cluster=cluster, version=version)
        )

    @extend_schema(request=None, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def destroy_cluster(self, request: Request, name: str | None = None) -> Response:
        """Delete the cluster itself (its infrastructure), then remove it from Keelson."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "delete clusters", cluster)
        return _lifecycle(request, lambda: cluster_destroy(actor=actor(request), cluster=cluster))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def provisioning(self, request: Request, name: str | None = None) -> Response:
        """How Keelson built the cluster: provider, spec, lifecycle, provider capabilities."""
        cluster = self.get_object()
        record = ClusterProvisioning.objects.filter(cluster=cluster).first()
        if record is None:
            return Response({"provider": None, "lifecycle": None})
        capabilities = get_provider(record.provider).capabilities()
        return Response(
            {
                "provider": record.provider,
                "lifecycle": record.lifecycle,
                "spec": record.spec,
                "capabilities": capabilities.__dict__,
            }
        )

    @extend_schema(request=KubeconfigSerializer, responses=ContextSerializer(many=True))
    @action(detail=False, methods=["post"])
    def contexts(self, request: Request) -> Response:
        """The contexts of a kubeconfig (nothing is stored), to choose one at registration."""
        payload = KubeconfigSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            contexts, current = list_contexts(payload.validated_data["kubeconfig"])
        except KubeconfigError as error:
            raise ValidationError({"kubeconfig": [str(error)]}) from None
        rows = [{**context.__dict__, "current": context.name == current} for context in contexts]
        return Response(ContextSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
            OpenApiParameter("resolution", OpenApiTypes.STR, enum=["auto", "raw", "hour", "day"]),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def health(self, request: Request, name: str | None = None) -> Response:
        """Health history for charts (raw samples, hourly or daily rollups)."""
        cluster = self.get_object()
        now = timezone.now()
        until = _when(request, "until", now)
        since = _when(request, "since", until - timedelta(hours=6))
        if since >= until:
            raise ValidationError({"since": ["since must be before until."]})
        try:
            series = health_series(
                cluster=cluster,
                since=since,
                until=until,
                resolution=request.query_params.get("resolution", "auto"),
            )
        except ValueError as error:
            raise ValidationError({"resolution": [str(error)]}) from None
        return Response(series)

    @extend_schema(responses=TransitionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def timeline(self, request: Request, name: str | None = None) -> Response:
        cluster = self.get_object()
        return _paginated(self, request, cluster.transitions.all(), TransitionSerializer)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def inventory(self, request: Request, name: str | None = None) -> Response:
        """The last collected inventory: nodes, namespaces, workloads, pods, warnings."""
        cluster = self.get_object()
        inventory = ClusterInventory.objects.filter(cluster=cluster).first()
        if inventory is None:
            return Response({"collected_at": None, "data": {}})
        return Response({"collected_at": inventory.collected_at, "data": inventory.data})

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def probe(self, request: Request, name: str | None = None) -> Response:
        """Collect inventory and health now (instead of at the next interval); a pull-mode
        cluster answers 400 (its agent reports, the hub cannot reach it)."""
        cluster = self.get_object()
        self.require(cluster.team, Role.OPERATOR, "probe clusters", cluster)
        try:
            task = cluster_probe_now(actor=actor(request), cluster=cluster, request=request)
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None
        return Response({"task": task}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={201: BootstrapTokenSerializer})
    @action(detail=True, methods=["post"], url_path="bootstrap-token")
    def bootstrap_token(self, request: Request, name: str | None = None) -> Response:
        """A new one-time token to enroll (or re-enroll) the cluster's agent."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "issue agent tokens", cluster)
        try:
            token = bootstrap_token_issue(cluster=cluster, actor=actor(request))
        except RegistrationError as error:
            raise registration_error(error) from None
        return Response(
            {"bootstrap_token": token, "agent_command": agent_command(request, token)},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter(
                "access", str, enum=["read-write", "read-only"], description="read-only: observe"
            )
        ],
        responses={(200, "application/yaml"): OpenApiTypes.STR},
    )
    @action(detail=False, methods=["get"], url_path="push-identity-manifest")
    def push_identity_manifest(self, request: Request) -> HttpResponse:
        """A least-privilege identity for the hub in a push-mode cluster (Namespace,
        ServiceAccount, ClusterRole and binding, long-lived token Secret), for clusters
        whose kubeconfig needs an exec plugin; `?access=read-only` for one Keelson only
        observes. Register with the Secret's token and CA afterwards."""
        access = request.query_params.get("access", "read-write")
        if access not in ("read-write", "read-only"):
            raise ValidationError({"access": ["Choose read-write or read-only."]})
        objects = push_identity_objects(read_only=access == "read-only")
        return HttpResponse(as_yaml(objects), content_type="application/yaml")

    @extend_schema(request=None, responses={(200, "application/yaml"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], url_path="agent-manifest")
    def agent_manifest(self, request: Request, name: str | None = None) -> HttpResponse:
        """The agent's install manifest (`... | kubectl apply -f -`): Namespace,
        ServiceAccount, least-privilege ClusterRole and binding, a Secret with a new
        one-time bootstrap token (older unused ones stop working), and the Deployment."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "issue agent tokens", cluster)
        try:
            token = bootstrap_token_issue(cluster=cluster, actor=actor(request))
        except RegistrationError as error:
            raise registration_error(error) from None
        hub = request.build_absolute_uri("/").rstrip("/")
        objects = agent_objects(hub=hub, bootstrap_token=token, image=settings.KEELSON_AGENT_IMAGE)
        response = HttpResponse(as_yaml(objects), content_type="application/yaml")
        response["Cache-Control"] = "no-store"  # it holds a bootstrap token
        return response

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="revoke-agent")
    def revoke_agent(self, request: Request, name: str | None = None) -> Response:
        """Revoke the agent's token (and unused bootstrap tokens): it is refused from now on."""
        cluster = self.get_object()
        self.require(cluster.team, Role.ADMIN, "revoke agents", cluster)
        revoked = agent_tokens_revoke(cluster=cluster, actor=actor(request))
        return Response({"revoked": revoked})


def _lifecycle(request: Request, start: Any) -> Response:
    try:
        operation = start()
    except DjangoValidationError as error:
        detail = error.message_dict if hasattr(error, "error_dict") else error.messages
        raise ValidationError(detail) from None
    return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)


def _paginated(view: Any, request: Request, query: QuerySet[Any], serializer: Any) -> Response:
    """Paginate a queryset of another model than the viewset's."""
    page = view.paginator.paginate_queryset(query, request, view=view)
    return view.paginator.get_paginated_response(serializer(page, many=True).data)


def _when(request: Request, name: str, default: datetime) -> datetime:
    raw = request.query_params.get(name)
    if not raw:
        return default
    parsed = parse_datetime(raw)
    if parsed is None:
        raise ValidationError({name: ["Use an ISO 8601 date-time."]})
    return as_utc(parsed)


class ClusterSetViewSet(TeamOwnedModelViewSet[ClusterSet]):
    """Named groups of clusters: explicit members and/or a label selector."""

    serializer_class = ClusterSetSerializer
    lookup_field = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = ClusterSet.objects.select_related("team").prefetch_related("members")

    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer[ClusterSet]:
        serializer = super().get_serializer(*args, **kwargs)
        members = serializer.fields.get("members") if hasattr(serializer, "fields") else None
        if members is not None and hasattr(members, "child_relation"):
            members.child_relation.queryset = cluster_list(user=self.request.user)
        return serializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        authorize_create(
            request, field="team_name", minimum=Role.OPERATOR, doing="create cluster sets"
        )
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[ClusterSet]) -> None:
        data = dict(serializer.validated_data)
        team = get_object_or_404(Team, name=data.pop("team_name", ""))
        self.require(team, Role.OPERATOR, "create cluster sets")
        members = data.pop("members", None)
        serializer.instance = _save_set(self.request, ClusterSet(team=team, **data), members)

    def perform_update(self, serializer: BaseSerializer[ClusterSet]) -> None:
        instance = serializer.instance
        assert isinstance(instance, ClusterSet)
        self.require(instance.team, Role.OPERATOR, "change cluster sets", instance)
        refuse_if_managed(instance)
        data = dict(serializer.validated_data)
        data.pop("team_name", None)
        members = data.pop("members", None)
        for key, value in data.items():
            setattr(instance, key, value)
        serializer.instance = _save_set(self.request, instance, members)

    def perform_destroy(self, instance: ClusterSet) -> None:
        self.require(instance.team, Role.OPERATOR, "delete cluster sets", instance)
        refuse_if_managed(instance)
        cluster_set_delete(actor=actor(self.request), cluster_set=instance)

    @extend_schema(responses=ClusterSerializer(many=True))
    @action(detail=True, methods=["get"])
    def clusters(self, request: Request, name: str | None = None) -> Response:
        """The set's clusters now: explicit members plus those its selector matches."""
        cluster_set = self.get_object()
        query = cluster_set_clusters(cluster_set=cluster_set).select_related("team")
        return _paginated(self, request, query.order_by("name"), ClusterSerializer)


def _save_set(request: Any, cluster_set: ClusterSet, members: list[Cluster] | None) -> ClusterSet:
    try:
        return cluster_set_save(actor=request.user, cluster_set=cluster_set, members=members)
    except DjangoValidationError as error:
        raise ValidationError(
            error.message_dict if hasattr(error, "error_dict") else error.messages
        ) from None
