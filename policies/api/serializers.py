"""Policy API serializers: they list fields and run no queries of their own."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from policies.choices import ComplianceType, Mode, ReportFormat, ReportScope, RuleKind, Severity
from policies.library import PSS_VERSION_CHOICES
from policies.models import (
    ComplianceReport,
    EnforcementAction,
    Policy,
    PolicyClusterMode,
    PolicyEvaluation,
    PolicyRule,
    ReportDefinition,
    ReportFile,
)
from policies.services.policies import RULE_FIELDS


class RuleSerializer(serializers.ModelSerializer[PolicyRule]):
    kind = serializers.ChoiceField(choices=RuleKind.choices)
    compliance_type = serializers.ChoiceField(
        choices=ComplianceType.choices, required=False, allow_blank=True
    )
    match = serializers.JSONField(
        required=False,
        help_text='{"kinds": ["Pod", "apps/Deployment"], "namespaces": [], '
        '"excludeNamespaces": [], "labelSelector": "app=web"}',
    )
    object_template = serializers.JSONField(required=False)

    class Meta:
        model = PolicyRule
        fields = list(RULE_FIELDS)


class RuleReadSerializer(RuleSerializer):
    enforce_effect = serializers.CharField(
        read_only=True,
        help_text="What enforce mode does with this rule: object rules block Keelson's own "
        "propagation (reported only elsewhere), templates are applied or deleted, cluster "
        "rules report only.",
    )

    class Meta:
        model = PolicyRule
        fields = [*RULE_FIELDS, "enforce_effect"]


class ClusterModeSerializer(serializers.ModelSerializer[PolicyClusterMode]):
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    set_by = serializers.CharField(source="set_by.username", read_only=True, allow_null=True)

    class Meta:
        model = PolicyClusterMode
        fields = ["cluster", "mode", "set_by", "set_at", "reason"]
        read_only_fields = fields


class PolicySerializer(serializers.ModelSerializer[Policy]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster_sets: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )
    rules = RuleReadSerializer(many=True, read_only=True)
    source_engine = serializers.CharField(
        read_only=True,
        help_text='External policies: the engine that judges it ("kyverno", "gatekeeper", '
        '"policy-report"); "" for Keelson\'s own. External policies are read-only.',
    )
    source_name = serializers.CharField(
        read_only=True, help_text='The engine\'s name for it (Gatekeeper: "Kind/name").'
    )
    gone_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When no cluster reported it any more."
    )
    cluster_modes = ClusterModeSerializer(
        many=True,
        read_only=True,
        help_text="Clusters where the policy's mode differs from `mode` or is pinned (a "
        "staged promotion under way, or clusters kept at their mode): the mode there wins.",
    )

    class Meta:
        model = Policy
        fields = [
            "name",
            "team",
            "description",
            "severity",
            "standards",
            "cluster_sets",
            "cluster_selector",
            "placement",
            "mode",
            "cluster_modes",
            "enabled",
            "pss_version",
            "generation",
            "bundled",
            "source_engine",
            "source_name",
            "gone_at",
            "rules",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PolicyWriteSerializer(serializers.Serializer[Any]):
    """Create (all of it) or change (PATCH: only what is given) a policy. Rules are
    validated by the service: invalid CEL answers 400 with line, column and reason."""

    name = serializers.SlugField(max_length=63)
    team = serializers.SlugField(max_length=63, help_text="Create only.")
    description = serializers.CharField(allow_blank=True, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    standards = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    cluster_sets = serializers.ListField(child=serializers.SlugField(), required=False)
    cluster_selector = serializers.CharField(allow_blank=True, required=False, max_length=1000)
    placement = serializers.CharField(
        allow_blank=True,
        required=False,
        max_length=63,
        help_text="An application of the team: the policy targets the clusters it runs on.",
    )
    mode = serializers.ChoiceField(choices=Mode.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    rules = RuleSerializer(many=True, required=False)
    pss_version = serializers.ChoiceField(
        choices=[(v, v) for v in PSS_VERSION_CHOICES],
        required=False,
        help_text="Bundled Pod Security Standards policies: the standard's version to check "
        "(as Pod Security Admission's enforce-version). Changing it replaces the rules.",
    )


class ImpactObjectSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    rule = serializers.CharField()
    effect = serializers.ChoiceField(
        choices=["apply", "delete", "deny"],
        help_text="apply/delete: a template's remediation; deny: the application that wrote "
        "the object has its next write to the cluster refused.",
    )
    application = serializers.CharField(help_text="deny: the Keelson application; else empty.")


class ClusterImpactSerializer(serializers.Serializer[Any]):
    """What enforcing a policy on one cluster would do, from its newest evaluation there."""

    cluster = serializers.CharField()
    status = serializers.CharField(help_text='The newest result; "" when never evaluated.')
    evaluated_at = serializers.DateTimeField(allow_null=True)
    count = serializers.IntegerField(help_text="remediated + denied")
    remediated = serializers.IntegerField()
    denied = serializers.IntegerField()
    reported = serializers.IntegerField(
        help_text="Violations enforce mode does nothing about (objects other tools wrote, "
        "cluster rules)."
    )
    objects = ImpactObjectSerializer(many=True, help_text="The first 10 remediated or denied.")
    note = serializers.CharField()


FOLLOW_POLICY = "policy"  # a cluster mode that removes the override


class ClusterModesWriteSerializer(serializers.Serializer[Any]):
    """The policy's mode on some of its clusters, whatever its own mode."""

    clusters = serializers.ListField(
        child=serializers.SlugField(max_length=63), min_length=1, max_length=1000
    )
    mode = serializers.ChoiceField(
        choices=[*Mode.choices, (FOLLOW_POLICY, "Follow the policy's mode (remove the override)")],
        help_text='"inform" or "enforce" on these clusters; "policy" removes their override '
        "(they follow the policy's mode again). Enforcing needs the admin role.",
    )
    reason = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class PssPinSerializer(serializers.Serializer[Any]):
    """A cluster set's Pod Security Standards version: "latest" unless pinned. Bundled PSS
    policies not pinned themselves judge the set's clusters at it (a policy's own pin wins;
    a cluster in several pinned sets is judged at the oldest version)."""

    cluster_set = serializers.CharField(source="name", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True)
    pss_version = serializers.ChoiceField(
        choices=[(v, v) for v in PSS_VERSION_CHOICES],
        help_text='"latest" removes the pin.',
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "cluster_set": instance.name,
            "team": instance.team.name,
            "pss_version": getattr(instance, "pinned", None) or "latest",
        }


class EvaluationSerializer(serializers.ModelSerializer[PolicyEvaluation]):
    policy: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    team = serializers.CharField(source="policy.team.name", read_only=True)
    cluster = serializers.CharField(source="cluster_label", read_only=True)
    # The stored lists keep the first MAX_LISTED objects; the totals are exact.
    violations_partial = serializers.BooleanField(
        read_only=True, help_text="`violations` lists only the first of violations_total."
    )
    errors_partial = serializers.BooleanField(read_only=True)
    listing_note = serializers.CharField(
        read_only=True,
        help_text='"first 500 of 1,490 violating objects listed", "20 of 57 (Gatekeeper '
        'lists 20)", or "".',
    )

    class Meta:
        model = PolicyEvaluation
        fields = [
            "id",
            "policy",
            "team",
            "cluster",
            "run_id",
            "status",
            "message",
            "violations",
            "violations_total",
            "violations_partial",
            "errors",
            "errors_total",
            "errors_partial",
            "listing_note",
            "objects_checked",
            "policy_generation",
            "inventory_stamp",
            "forced",
            "evaluated_at",
            "checked_at",
        ]
        read_only_fields = fields


class EnforcementActionSerializer(serializers.ModelSerializer[EnforcementAction]):
    cluster: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = EnforcementAction
        fields = [
            "cluster",
            "rule_name",
            "run_id",
            "action",
            "status",
            "target",
            "message",
            "created_at",
        ]
        read_only_fields = fields


class PlanActionSerializer(serializers.Serializer[Any]):
    rule = serializers.CharField()
    action = serializers.CharField()
    apiVersion = serializers.CharField()
    kind = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    reason = serializers.CharField()


class ClusterPlanSerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField()
    actions = PlanActionSerializer(many=True)
    unfixable_violations = serializers.IntegerField(
        help_text="Violations of object or cluster rules: reported, not remediated."
    )
    error = serializers.CharField()


class ReportDefinitionSerializer(serializers.ModelSerializer[ReportDefinition]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    team_name = serializers.SlugField(write_only=True, required=False, help_text="Create only.")
    scope = serializers.ChoiceField(choices=ReportScope.choices, required=False)
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=ReportFormat.choices), required=False
    )
    recipients = serializers.ListField(child=serializers.EmailField(), required=False)

    class Meta:
        model = ReportDefinition
        fields = [
            "name",
            "team",
            "team_name",
            "scope",
            "scope_value",
            "period_days",
            "formats",
            "recipients",
            "schedule",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["team", "created_at"]


class ReportFileSerializer(serializers.ModelSerializer[ReportFile]):
    class Meta:
        model = ReportFile
        fields = ["format", "content_type", "size"]
        read_only_fields = fields


class ComplianceReportSerializer(serializers.ModelSerializer[ComplianceReport]):
    definition = serializers.CharField(source="definition.name", read_only=True)
    team = serializers.CharField(source="definition.team.name", read_only=True)
    files = ReportFileSerializer(many=True, read_only=True)

    class Meta:
        model = ComplianceReport
        fields = [
            "id",
            "definition",
            "team",
            "period_start",
            "period_end",
            "generated_at",
            "data",
            "files",
            "mailed_to",
        ]
        read_only_fields = fields
