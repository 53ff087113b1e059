"""Channels a team's notifications go to, and one delivery per notification and channel."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import validate_slug
from django.db import models

from accounts.models import Team
from notifications.choices import ChannelKind, DeliveryState, Severity


class Channel(models.Model):
    """Where a team's notifications go. `config` holds what may be shown (recipients, the
    Alertmanager URL, a user name, the host of a secret URL); `ciphertext` holds the
    secrets (webhook URLs with their tokens, the HMAC secret, a password) as one JSON
    object encrypted with the key ring (core.crypto), never shown again once entered."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=63, validators=[validate_slug])
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    enabled = models.BooleanField(default=True)
    min_severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.INFO)
    config = models.JSONField(default=dict, blank=True)
    ciphertext = models.TextField(blank=True)
    secret_names = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="notification_channel_team_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def recipients(self) -> list[str]:
        return list(self.config.get("recipients", []))

    @property
    def username(self) -> str:
        return str(self.config.get("username", ""))

    @property
    def url_hint(self) -> str:
        """The channel's URL as far as it may be shown: Alertmanager's in full, a webhook's
        scheme and host only (its path carries the token)."""
        return str(self.config.get("url_hint", ""))


class Delivery(models.Model):
    """One notification to one channel. `payload` is the notification as handed to
    `dispatch` (no secret: channels render it when sending); a delivery that exhausted its
    attempts, or failed for good, is a dead letter (`state=dead`) until someone retries it."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    group_key = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16)  # the notification's: firing or resolved
    severity = models.CharField(max_length=16, choices=Severity.choices)
    title = models.CharField(max_length=255)
    payload = models.JSONField()
    test = models.BooleanField(default=False)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "state", "-created_at"], name="delivery_team_state"),
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.title} → {self.channel_id}"
