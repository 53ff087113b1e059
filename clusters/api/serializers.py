from __future__ import annotations

from datetime import date
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.choices import ClusterMode, EolState, Provider
from clusters.eol import eol_for, eol_state
from clusters.labels import validate_labels, validate_taints
from clusters.models import Cluster, ClusterSet, ClusterTransition

CLUSTER_FIELDS = [
    "name",
    "display_name",
    "description",
    "team",
    "provider",
    "region",
    "zone",
    "environment",
    "labels",
    "taints",
    "mode",
    "api_server_url",
    "insecure_skip_tls_verify",
    "status",
    "status_reason",
    "status_message",
    "status_changed_at",
    "conditions",
    "kubernetes_version",
    "eol_state",
    "eol_date",
    "node_count",
    "nodes_ready",
    "capacity_cpu_millis",
    "capacity_memory_bytes",
    "capacity_gpu",
    "capacity_pods",
    "allocatable_cpu_millis",
    "allocatable_memory_bytes",
    "allocatable_gpu",
    "allocatable_pods",
    "requested_cpu_millis",
    "requested_memory_bytes",
    "api_latency_ms",
    "last_seen_at",
    "created_at",
    "updated_at",
]


def _django_validator(check: Any) -> Any:
    """Run a model-level validator and report its messages as DRF errors."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    def run(value: Any) -> None:
        try:
            check(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None

    return run


class ClusterSerializer(serializers.ModelSerializer[Cluster]):
    """A cluster as the API shows it. Credentials are not part of it, ever."""

    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    eol_state = serializers.SerializerMethodField(
        help_text="The version's end-of-life state today: past, soon (within 90 days), "
        "supported or unknown (the table does not know the version)."
    )
    eol_date = serializers.SerializerMethodField(
        help_text="The version's end of standard support on the cluster's provider."
    )

    class Meta:
        model = Cluster
        fields = CLUSTER_FIELDS
        read_only_fields = CLUSTER_FIELDS

    @extend_schema_field(serializers.ChoiceField(choices=EolState.choices))
    def get_eol_state(self, cluster: Cluster) -> str:
        return eol_state(self.get_eol_date(cluster)).value

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_eol_date(self, cluster: Cluster) -> date | None:
        return eol_for(cluster.provider, cluster.kubernetes_version)


class ClusterUpdateSerializer(serializers.Serializer[Any]):
    display_name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    provider = serializers.ChoiceField(choices=Provider.choices, required=False)
    region = serializers.CharField(max_length=64, allow_blank=True, required=False)
    zone = serializers.CharField(max_length=64, allow_blank=True, required=False)
    environment = serializers.CharField(max_length=64, allow_blank=True, required=False)
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        validators=[_django_validator(validate_labels)],
    )
    taints = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField(allow_blank=True)),
        required=False,
        validators=[_django_validator(validate_taints)],
    )


class ClusterRegisterSerializer(ClusterUpdateSerializer):
    """Push mode: a kubeconfig (and context), or server + token + CA. Pull mode: nothing
    more; the response holds the one-time bootstrap token for the agent."""

    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=63)
    mode = serializers.ChoiceField(choices=ClusterMode.choices, default=ClusterMode.PUSH)
    kubeconfig = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False
    )
    kubeconfig_context = serializers.CharField(
        max_length=253,
        required=False,
        allow_blank=True,
        help_text="The kubeconfig context to use (its current context when empty).",
    )
    server = serializers.CharField(max_length=500, required=False, allow_blank=True)
    token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    ca_data = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False
    )
    insecure_skip_tls_verify = serializers.BooleanField(default=False)


class ClusterRegisteredSerializer(serializers.Serializer[Any]):
    cluster = ClusterSerializer()
    warnings = serializers.ListField(child=serializers.CharField())
    bootstrap_token = serializers.CharField(
        required=False, help_text="Pull mode only. Shown once; stored only as a hash."
    )
    agent_command = serializers.CharField(required=False)


class KubeconfigSerializer(serializers.Serializer[Any]):
    kubeconfig = serializers.CharField(write_only=True, trim_whitespace=False)


class ContextSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    cluster = serializers.CharField()
    server = serializers.CharField()
    user = serializers.CharField()
    namespace = serializers.CharField()
    current = serializers.BooleanField()


class TransitionSerializer(serializers.ModelSerializer[ClusterTransition]):
    class Meta:
        model = ClusterTransition
        fields = ["at", "from_status", "to_status", "reason", "message"]
        read_only_fields = fields


class BootstrapTokenSerializer(serializers.Serializer[Any]):
    bootstrap_token = serializers.CharField()
    agent_command = serializers.CharField()


class ClusterSetSerializer(serializers.ModelSerializer[ClusterSet]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    team_name = serializers.SlugField(write_only=True, required=False)
    members: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", many=True, queryset=Cluster.objects.all(), required=False
    )

    class Meta:
        model = ClusterSet
        fields = ["name", "description", "team", "team_name", "selector", "members", "created_at"]
        read_only_fields = ["team", "created_at"]
