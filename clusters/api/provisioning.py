"""API for creating clusters through providers, cluster templates, and lifecycle actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TeamOwnedModelViewSet, actor, authorize_create
from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, restrict, user_has_role
from clusters.labels import validate_labels
from clusters.models import ClusterTemplate
from clusters.providers.base import ClusterSpec
from clusters.providers.catalog import INSTANCE_TYPES
from clusters.providers.registry import get_provider, provider_names
from clusters.services.provisioning import cluster_create
from clusters.services.templates import (
    cluster_template_create,
    cluster_template_delete,
    cluster_template_spec,
    cluster_template_update,
)
from operations.api.serializers import OperationSerializer


class NodePoolSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=32)
    instance_type = serializers.ChoiceField(choices=sorted(INSTANCE_TYPES))
    count = serializers.IntegerField(min_value=0, max_value=1000)
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    image = serializers.CharField(
        max_length=63, allow_blank=True, required=False, help_text="Node image; empty: default."
    )
    version = serializers.CharField(
        max_length=16,
        allow_blank=True,
        required=False,
        help_text="The kubelet's Kubernetes version; empty: the cluster's.",
    )


class ClusterSpecSerializer(serializers.Serializer[Any]):
    provider = serializers.CharField(max_length=16)
    region = serializers.CharField(max_length=64, allow_blank=True, default="")
    kubernetes_version = serializers.CharField(max_length=16)
    node_pools = NodePoolSerializer(many=True)
    params = serializers.DictField(required=False, help_text="Provider-specific settings.")


class ClusterCreateSerializer(serializers.Serializer[Any]):
    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=63)
    environment = serializers.CharField(max_length=64, allow_blank=True, default="")
    description = serializers.CharField(allow_blank=True, default="")
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), default=dict)
    spec = ClusterSpecSerializer(required=False)
    template = serializers.SlugField(required=False, help_text="Create from this template.")


class ScaleSerializer(serializers.Serializer[Any]):
    pool = serializers.CharField(max_length=32)
    count = serializers.IntegerField(min_value=0, max_value=1000)


class PoolUpdateSerializer(serializers.Serializer[Any]):
    """Leave a field out to keep it; "" sets the default image or the cluster's version."""

    pool = serializers.CharField(max_length=32)
    image = serializers.CharField(max_length=63, allow_blank=True, required=False)
    instance_type = serializers.CharField(max_length=64, required=False)
    version = serializers.CharField(max_length=16, allow_blank=True, required=False)


class UpgradeSerializer(serializers.Serializer[Any]):
    kubernetes_version = serializers.CharField(max_length=16)


class ClusterTemplateSerializer(serializers.ModelSerializer[ClusterTemplate]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", queryset=Team.objects.all()
    )
    spec = ClusterSpecSerializer()

    class Meta:
        model = ClusterTemplate
        fields = ["name", "description", "team", "spec", "created_at"]
        read_only_fields = ["created_at"]

    def validate_spec(self, value: dict[str, Any]) -> dict[str, Any]:
        return validated_spec(value).as_json()


def validated_spec(data: dict[str, Any]) -> ClusterSpec:
    """Parse and check a spec with its provider; DRF errors naming the field."""
    try:
        spec = cluster_template_spec(data)
    except DjangoValidationError as error:
        detail = error.message_dict if hasattr(error, "error_dict") else error.messages
        raise ValidationError(detail) from None
    return spec


def team_for(request: Request, name: str, doing: str) -> Team:
    team = Team.objects.filter(name=name).first()
    if team is None or not user_has_role(request.user, team, Role.VIEWER):
        raise ValidationError({"team": ["No such team."]})
    require_role(request.user, team, Role.OPERATOR, doing=doing, request=request)
    return team


def create_cluster_response(request: Request, data: dict[str, Any]) -> Response:
    """Shared by POST /clusters/provision/ and POST /cluster-templates/<name>/create-cluster/."""
    team = team_for(request, data["team"], "create clusters")
    template = None
    if data.get("template"):
        visible = restrict(ClusterTemplate.objects.all(), request.user, "view")
        template = visible.filter(name=data["template"]).first()
        if template is None:
            raise ValidationError({"template": ["No such template."]})
        spec = validated_spec(template.spec)
    elif data.get("spec"):
        spec = validated_spec(data["spec"])
    else:
        raise ValidationError({"spec": ["Give a spec or a template."]})
    try:
        validate_labels(data.get("labels", {}))
        operation = cluster_create(
            actor=actor(request),
            team=team,
            name=data["name"],
            spec=spec,
            labels=data.get("labels", {}),
            environment=data.get("environment", ""),
            description=data.get("description", ""),
            template=template,
        )
    except DjangoValidationError as error:
        detail = error.message_dict if hasattr(error, "error_dict") else error.messages
        raise ValidationError(detail) from None
    return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)


class ClusterTemplateViewSet(TeamOwnedModelViewSet[ClusterTemplate]):
    """Saved cluster specs (provider, region, version, node pools) to create clusters from."""

    serializer_class = ClusterTemplateSerializer
    lookup_field = "name"
    http_method_names = ["get", "post", "put", "delete", "head", "options"]
    queryset = ClusterTemplate.objects.select_related("team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        authorize_create(request, field="team", minimum=Role.OPERATOR, doing="create templates")
        return super().create(request, *args, **kwargs)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        template = self.get_object()
        team_for(request, template.team.name, "change templates")
        return super().update(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[ClusterTemplate]) -> None:
        data = dict(serializer.validated_data)
        team = data.pop("team")
        team_for(self.request, team.name, "create templates")
        serializer.instance = _template_write(
            cluster_template_create, actor=actor(self.request), team=team, **data
        )

    def perform_update(self, serializer: serializers.BaseSerializer[ClusterTemplate]) -> None:
        template = serializer.instance
        assert isinstance(template, ClusterTemplate)
        team_for(self.request, template.team.name, "change templates")
        changes = dict(serializer.validated_data)
        if "team" in changes and changes["team"] != template.team:
            team_for(self.request, changes["team"].name, "move templates into it")
        serializer.instance = _template_write(
            cluster_template_update, actor=actor(self.request), template=template, changes=changes
        )

    def perform_destroy(self, instance: ClusterTemplate) -> None:
        team_for(self.request, instance.team.name, "delete templates")
        cluster_template_delete(actor=actor(self.request), template=instance)

    @extend_schema(request=ClusterCreateSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"], url_path="create-cluster")
    def create_cluster(self, request: Request, name: str | None = None) -> Response:
        """Create a cluster from this template (202 with the provisioning Operation)."""
        template = self.get_object()
        self.require(template.team, Role.OPERATOR, "create clusters from its templates", template)
        authorize_create(request, field="team", minimum=Role.OPERATOR, doing="create clusters")
        body = {**dict(request.data), "template": template.name}
        payload = ClusterCreateSerializer(data=body)
        payload.is_valid(raise_exception=True)
        return create_cluster_response(request, dict(payload.validated_data))


def _template_write(service: Callable[..., ClusterTemplate], **kwargs: Any) -> ClusterTemplate:
    try:
        return service(**kwargs)
    except DjangoValidationError as error:
        detail = error.message_dict if hasattr(error, "error_dict") else error.messages
        raise ValidationError(detail) from None


class ProviderViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Any]):
    """Providers and what each can do here; the instance types node pools may use."""

    pagination_class = None

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def list(self, request: Request) -> Response:
        providers = []
        for name in provider_names():
            capabilities = get_provider(name).capabilities()
            providers.append({"name": name, **capabilities.__dict__})
        types = [t.__dict__ for t in INSTANCE_TYPES.values()]
        return Response({"providers": providers, "instance_types": types})
