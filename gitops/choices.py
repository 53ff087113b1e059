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
    # Re-applying (or previewing) an earlier commit: gitops.rollback.
    ROLLBACK = "rollback", "Roll back"


class SyncResult(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    UNCHANGED = "unchanged", "Unchanged"
    PLANNED = "planned", "Planned (not applied)"
    FAILED = "failed", "Failed"


class ObjectStatus(models.TextChoices):
    """How an object a repository declares compares with Git (gitops.drift)."""

    # As the last applied commit declared it.
    SYNCED = "synced", "Synced"
    # Changed outside Git since (or deleted, or released): the next sync restores it.
    DRIFTED = "drifted", "Drifted"
    # The last sync failed on it, or its rollout did.
    FAILED = "failed", "Failed"
    # A planned commit would change it (waiting for approval), or it is rolling out.
    PENDING = "pending", "Pending"
