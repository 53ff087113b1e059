"""Notification channels and deliveries in the API. Secrets are write-only: no response
carries a webhook URL's path, the signing secret or a password, whoever asks."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from notifications.choices import ChannelKind, Severity
from notifications.models import Channel, Delivery
from notifications.services import MAX_RECIPIENTS, MAX_SECRET


class ChannelSerializer(serializers.ModelSerializer[Channel]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    team_name = serializers.SlugField(write_only=True, required=False, help_text="Create only.")
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    min_severity = serializers.ChoiceField(
        choices=Severity.choices,
        required=False,
        help_text="Only notifications of this severity or a higher one reach the channel.",
    )
    recipients = serializers.ListField(
        child=serializers.EmailField(),
        required=False,
        max_length=MAX_RECIPIENTS,
        help_text="E-mail channels: the addresses.",
    )
    url = serializers.CharField(
        write_only=True,
        required=False,
        max_length=2048,
        help_text=(
            "Where to post: the incoming-webhook URL (generic, Slack, Teams; write-only, it "
            "carries a token) or Alertmanager's base URL (without /api/v2/alerts)."
        ),
    )
    url_hint = serializers.CharField(
        read_only=True,
        help_text="The URL as far as it may be shown: Alertmanager's in full, a webhook's host.",
    )
    hmac_secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=MAX_SECRET,
        trim_whitespace=False,
        help_text="Generic webhooks: the key of the X-Keelson-Signature HMAC (write-only).",
    )
    username = serializers.CharField(
        required=False, allow_blank=True, max_length=150, help_text="Alertmanager basic auth."
    )
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=MAX_SECRET,
        trim_whitespace=False,
        help_text="Alertmanager basic auth (write-only; empty removes it).",
    )
    secrets = serializers.ListField(
        source="secret_names",
        child=serializers.CharField(),
        read_only=True,
        help_text="Which secrets are stored (their values are never shown).",
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "team",
            "team_name",
            "name",
            "kind",
            "enabled",
            "min_severity",
            "recipients",
            "url",
            "url_hint",
            "hmac_secret",
            "username",
            "password",
            "secrets",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "team", "created_at", "updated_at"]


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    channel = serializers.IntegerField(source="channel_id", read_only=True)
    channel_name = serializers.CharField(source="channel.name", read_only=True)
    channel_kind = serializers.CharField(source="channel.kind", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "channel_name",
            "channel_kind",
            "team",
            "group_key",
            "status",
            "severity",
            "title",
            "test",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "response_status",
            "created_at",
            "delivered_at",
            "dead_at",
        ]
        read_only_fields = fields
