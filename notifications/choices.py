from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook (JSON, signed)"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams incoming webhook"
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"


class Severity(models.TextChoices):
    """Ordered: a channel with a minimum severity gets that one and the ones above it."""

    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead letter"
