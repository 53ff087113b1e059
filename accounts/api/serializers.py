from __future__ import annotations

from rest_framework import serializers

from accounts.choices import Role, TokenScope
from accounts.models import ApiToken, GroupMapping, Membership, Team

DESCRIPTION_MAX = 2000


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    """A member: `source` idp means the group mapping made it (only the identity
    provider's groups change it); `last_login` is the user's, in any way."""

    username = serializers.CharField(source="user.username", read_only=True)
    last_login = serializers.DateTimeField(source="user.last_login", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "source", "last_login", "created_at"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer[Team]):
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX, required=False, allow_blank=True
    )

    class Meta:
        model = Team
        fields = ["id", "name", "display_name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class TeamUpdateSerializer(serializers.Serializer[Team]):
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX, required=False, allow_blank=True
    )


class MembershipRoleSerializer(serializers.Serializer[Membership]):
    role = serializers.ChoiceField(choices=Role.choices)


class GroupMappingSerializer(serializers.ModelSerializer[GroupMapping]):
    """A rule: members of the identity provider's `group` get `role` in `team` at each
    single sign-on."""

    team: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(
        slug_field="name", queryset=Team.objects.all()
    )

    class Meta:
        model = GroupMapping
        fields = ["id", "group", "team", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        # Uniqueness is the service's to check, with its own message.
        validators: list[object] = []


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
