from typing import Any

from rest_framework import serializers

from operations.models import Operation, OperationLogLine


class OperationSerializer(serializers.ModelSerializer[Operation]):
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "target_type",
            "target_id",
            "target_repr",
            "team",
            "created_by",
            "state",
            "progress",
            "message",
            "error",
            "params",
            "result",
            "cancel_requested",
            "version",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class OperationLogLineSerializer(serializers.ModelSerializer[OperationLogLine]):
    class Meta:
        model = OperationLogLine
        fields = ["id", "at", "level", "text"]
        read_only_fields = fields
