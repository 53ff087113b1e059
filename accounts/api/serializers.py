from __future__ import annotations

from rest_framework import serializers

from accounts.choices import Role, TokenScope
from accounts.models import ApiToken, Membership, Team


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer[Team]):
    class Meta:
        model = Team
        fields = ["id", "name", "display_name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class MembershipWriteSerializer(serializers.Serializer[Membership]):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    """A token as listed: never its secret (only stored as a hash)."""

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "scope",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer[ApiToken]):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.READ)
    expires_in_days = serializers.IntegerField(required=False, min_value=1)


class ApiTokenIssuedSerializer(ApiTokenSerializer):
    """A token with its secret: the answer to create and rotate, the only time it is shown."""

    secret = serializers.CharField(read_only=True)

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class TeamGuardrailsSerializer(serializers.ModelSerializer[Team]):
    class Meta:
        model = Team
        fields = ["allowed_namespaces", "allow_cluster_scoped"]
