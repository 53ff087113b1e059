"""Alerts API shapes. Serializers list fields and run no queries (the viewsets'
querysets select what they show)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from alerts.choices import RuleKind, Severity
from alerts.models import Alert, AlertRule, Silence


class AlertRuleSerializer(serializers.ModelSerializer[AlertRule]):
    team = serializers.CharField(source="team.name", read_only=True)
    cluster_set = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "team",
            "name",
            "description",
            "kind",
            "params",
            "severity",
            "cluster_set",
            "selector",
            "group_by",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "enabled",
            "evaluated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_cluster_set(self, rule: AlertRule) -> str:
        return rule.cluster_set.name if rule.cluster_set else ""


class AlertRuleWriteSerializer(serializers.Serializer[Any]):
    """What a create or change may say; the service checks the rest (params per kind)."""

    team = serializers.CharField(max_length=63, required=False)
    name = serializers.CharField(max_length=63, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=RuleKind.choices, required=False)
    params = serializers.JSONField(required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    cluster_set = serializers.CharField(max_length=63, required=False, allow_blank=True)
    selector = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    group_by = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    group_wait = serializers.IntegerField(required=False)
    group_interval = serializers.IntegerField(required=False)
    repeat_interval = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)


class AlertSerializer(serializers.ModelSerializer[Alert]):
    team = serializers.CharField(source="team.name", read_only=True)
    rule = serializers.CharField(source="rule.name", read_only=True)
    state = serializers.CharField(source="shown_state", read_only=True)
    cluster = serializers.SerializerMethodField()
    acknowledged_by = serializers.SerializerMethodField()
    silence = serializers.IntegerField(source="silence_id", read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "team",
            "rule",
            "fingerprint",
            "subject",
            "cluster",
            "severity",
            "state",
            "labels",
            "annotations",
            "starts_at",
            "ends_at",
            "acknowledged_at",
            "acknowledged_by",
            "silence",
            "notified_at",
            "resolved_notified_at",
        ]
        read_only_fields = fields

    def get_cluster(self, alert: Alert) -> str:
        return alert.cluster.name if alert.cluster else ""

    def get_acknowledged_by(self, alert: Alert) -> str:
        return alert.acknowledged_by.get_username() if alert.acknowledged_by else ""


class SilenceSerializer(serializers.ModelSerializer[Silence]):
    team = serializers.CharField(source="team.name", read_only=True)
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = [
            "id",
            "team",
            "matchers",
            "comment",
            "starts_at",
            "ends_at",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_created_by(self, silence: Silence) -> str:
        return silence.created_by.get_username() if silence.created_by else ""


class SilenceWriteSerializer(serializers.Serializer[Any]):
    team = serializers.CharField(max_length=63)
    matchers = serializers.ListField(
        child=serializers.CharField(max_length=600), min_length=1, max_length=20
    )
    comment = serializers.CharField(max_length=500)
    starts_at = serializers.DateTimeField(required=False)
    ends_at = serializers.DateTimeField()
