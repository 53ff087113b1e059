"""Update runs API shapes. Serializers list fields and run no queries (the viewsets'
querysets select and prefetch what they show)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from updates.choices import ChangeKind
from updates.models import (
    MaintenanceWindow,
    UpdateRun,
    UpdateRunCluster,
    UpdateRunStage,
    UpdateStrategy,
)
from updates.windows import next_opening, windows_from


class UpdateStrategySerializer(serializers.ModelSerializer[UpdateStrategy]):
    team = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = UpdateStrategy
        fields = ["id", "team", "name", "description", "stages", "created_at", "updated_at"]
        read_only_fields = fields


class UpdateStrategyWriteSerializer(serializers.Serializer[Any]):
    team = serializers.CharField(max_length=63, required=False, help_text="Create only.")
    name = serializers.CharField(max_length=63, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    stages = serializers.JSONField(
        required=False,
        help_text='[{"name", "groups": [{"name", "cluster_set"} or {"name", "selector"}], '
        '"max_concurrency": 2 or "25%", "soak_seconds": 0..86400, "approval": false}]',
    )


class MaintenanceWindowSerializer(serializers.ModelSerializer[MaintenanceWindow]):
    team = serializers.CharField(source="team.name", read_only=True)
    cluster_set = serializers.CharField(source="cluster_set.name", read_only=True)
    next_opening = serializers.SerializerMethodField(
        help_text="When the window next opens (now, if it is open); null when disabled."
    )

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "team",
            "name",
            "cluster_set",
            "days",
            "start_time",
            "duration_minutes",
            "timezone",
            "enabled",
            "next_opening",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_next_opening(self, window: MaintenanceWindow) -> str | None:
        if not window.enabled:
            return None
        windows = windows_from(
            [(window.days, window.start_time, window.duration_minutes, window.timezone, "")]
        )
        opening = next_opening(windows, timezone.now())
        return opening.at.isoformat() if opening else None


class MaintenanceWindowWriteSerializer(serializers.Serializer[Any]):
    team = serializers.CharField(max_length=63, required=False, help_text="Create only.")
    name = serializers.CharField(max_length=63, required=False)
    cluster_set = serializers.CharField(max_length=63, required=False)
    days = serializers.JSONField(
        required=False, help_text="ISO weekdays, 1 (Monday) to 7 (Sunday)."
    )
    start_time = serializers.TimeField(required=False, help_text="Local time, HH:MM.")
    duration_minutes = serializers.IntegerField(required=False, help_text="1 to 10080.")
    timezone = serializers.CharField(
        max_length=64, required=False, help_text="An IANA time zone, e.g. Europe/Berlin."
    )
    enabled = serializers.BooleanField(required=False)


class RunStageSerializer(serializers.ModelSerializer[UpdateRunStage]):
    approved_by = serializers.SerializerMethodField()

    class Meta:
        model = UpdateRunStage
        fields = [
            "index",
            "name",
            "state",
            "approval_required",
            "approved_by",
            "approved_at",
            "soak_seconds",
            "soak_until",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_approved_by(self, stage: UpdateRunStage) -> str:
        return stage.approved_by.get_username() if stage.approved_by else ""


class RunClusterSerializer(serializers.ModelSerializer[UpdateRunCluster]):
    cluster = serializers.CharField(source="cluster_name", read_only=True)
    stage = serializers.IntegerField(source="stage_index", read_only=True)

    class Meta:
        model = UpdateRunCluster
        fields = [
            "cluster",
            "stage",
            "group",
            "state",
            "from_value",
            "to_value",
            "skip_reason",
            "message",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class UpdateRunSerializer(serializers.ModelSerializer[UpdateRun]):
    team = serializers.CharField(source="team.name", read_only=True)
    strategy = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    stage_progress = RunStageSerializer(source="run_stages", many=True, read_only=True)
    clusters = RunClusterSerializer(source="run_clusters", many=True, read_only=True)

    class Meta:
        model = UpdateRun
        fields = [
            "id",
            "team",
            "name",
            "strategy",
            "stages",
            "change_kind",
            "change_params",
            "gates",
            "scope",
            "state",
            "current_stage",
            "message",
            "failure",
            "abort_requested",
            "operation",
            "stage_progress",
            "clusters",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_strategy(self, run: UpdateRun) -> str:
        return run.strategy.name if run.strategy else ""

    def get_created_by(self, run: UpdateRun) -> str:
        return run.created_by.get_username() if run.created_by else ""


class UpdateRunCreateSerializer(serializers.Serializer[Any]):
    team = serializers.CharField(max_length=63)
    name = serializers.CharField(max_length=100)
    strategy = serializers.CharField(max_length=63, help_text="The name of a team's strategy.")
    change_kind = serializers.ChoiceField(choices=ChangeKind.choices)
    change_params = serializers.JSONField(required=False)
    gates = serializers.JSONField(required=False)
    scope = serializers.JSONField(
        required=False, help_text='{"eol": "past"} and/or {"selector": "region=eu"}.'
    )


class SkipSerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField(max_length=63)


class ApproveSerializer(serializers.Serializer[Any]):
    stage = serializers.IntegerField(min_value=0, help_text="The stage's index (0 is the first).")


class RunStartedSerializer(serializers.Serializer[Any]):
    run = serializers.UUIDField()
    operation = serializers.UUIDField()
