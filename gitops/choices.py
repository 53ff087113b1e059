"""Choices of the gitops models."""

from __future__ import annotations

from django.db import models


class PrunePolicy(models.TextChoices):
    # Objects removed from the repository are deleted (applications: from their clusters too).
    PRUNE = "prune", "Prune"
    # They are kept and released: the marker goes, the API and pages may edit them again.
    ORPHAN = "orphan", "Orphan"


class SyncTrigger(models.TextChoices):
    MANUAL = "manual", "Sync now"
    PREVIEW = "preview", "Preview"
    POLL = "poll", "Poll"
    WEBHOOK = "webhook", "Webhook"


class SyncResult(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    UNCHANGED = "unchanged", "Unchanged"
    PLANNED = "planned", "Planned (not applied)"
    FAILED = "failed", "Failed"
