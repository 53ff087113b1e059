"""Applications (manifests with version history), their placement and its decisions."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from fleet.accounts.models import slug_validator


class Application(models.Model):
    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=63, validators=[slug_validator])
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApplicationVersion(models.Model):
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    manifests = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["application", "number"], name="appversion_unique")
        ]

    def __str__(self) -> str:
        return f"{self.application_id} v{self.number}"


class Placement(models.Model):
    application = models.OneToOneField(
        Application, on_delete=models.CASCADE, primary_key=True, related_name="placement"
    )
    spec = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"placement of {self.application_id}"


class PlacementDecision(models.Model):
    """One scheduling result, stored whole: chosen clusters with per-prioritizer scores and
    replicas, excluded clusters with the predicate that excluded them."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="decisions")
    version = models.PositiveIntegerField()
    application_version = models.PositiveIntegerField()
    decision = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["application", "version"], name="decision_unique")
        ]

    def __str__(self) -> str:
        return f"{self.application_id} decision {self.version}"
