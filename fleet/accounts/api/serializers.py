from __future__ import annotations

from rest_framework import serializers

from fleet.accounts.choices import Role
from fleet.accounts.models import Membership, Team


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
