"""Git repositories that declare a team's state, and their syncs."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import slug_validator
from gitops.choices import ObjectStatus, PrunePolicy, SyncResult, SyncTrigger


class GitRepository(models.Model):
    """Where a team's declared state lives: a ref of a repository and a folder in it.
    Credentials and the webhook secret are encrypted (core.crypto) and never read back."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[slug_validator])
    url = models.CharField(max_length=500)
    ref = models.CharField(max_length=255, default="main", help_text="A branch or a tag.")
    path = models.CharField(max_length=500, blank=True, help_text="A folder in the repository.")
    # A token (HTTPS, sent as an Authorization header) or a private SSH key, encrypted.
    credentials_encrypted = models.TextField(blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)
    poll_interval = models.PositiveIntegerField(
        default=300, help_text="Seconds between polls; 0 turns polling off."
    )
    prune = models.CharField(max_length=8, choices=PrunePolicy.choices, default=PrunePolicy.PRUNE)
    auto_apply = models.BooleanField(default=True)
    # Take over declared objects that exist unowned (made in the API or a page); objects
    # another repository owns stay conflicts.
    adopt = models.BooleanField(default=False, db_default=False)
    last_commit = models.CharField(max_length=40, blank=True)
    last_result = models.CharField(max_length=16, choices=SyncResult.choices, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    # Set by a rollback (gitops.rollback): syncs apply this commit, not the ref's tip, and
    # polls and webhooks leave the repository alone until it is unpinned.
    pinned_commit = models.CharField(max_length=40, blank=True, default="", db_default="")
    pinned_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "git repositories"
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="gitrepository_team_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_encrypted)


class GitSync(models.Model):
    """One fetch, validation and plan of a repository, applied or not."""

    repository = models.ForeignKey(GitRepository, on_delete=models.CASCADE, related_name="syncs")
    operation = models.ForeignKey(
        "operations.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=16, choices=SyncTrigger.choices)
    apply = models.BooleanField(default=True, help_text="False: compute the plan only.")
    commit = models.CharField(max_length=40, blank=True)
    # [{"action", "kind", "name", "file", "line", "diff"}] (gitops.plan.Change.as_json)
    plan = models.JSONField(default=list, blank=True)
    result = models.CharField(max_length=16, choices=SyncResult.choices, default=SyncResult.PENDING)
    # Each error names its file and line: "apps/web.yaml:12: spec.namespace: ..."
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sync of {self.repository_id} ({self.result})"


class GitObject(models.Model):
    """An object a repository declares: what the last applied commit declared about it
    (`declared`, in gitops.state's form) and how the object compares with that now
    (gitops.drift). A row without `commit` was never applied: a planned creation, or an
    application being pruned."""

    repository = models.ForeignKey(
        GitRepository, on_delete=models.CASCADE, related_name="declared_objects"
    )
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=255)
    file = models.CharField(max_length=500, blank=True)
    line = models.PositiveIntegerField(default=0)
    commit = models.CharField(max_length=40, blank=True)
    declared = models.JSONField(default=dict, blank=True)
    # The rollout Operation the apply started for an application, or why none started.
    rollout = models.UUIDField(null=True, blank=True)
    rollout_error = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=ObjectStatus.choices, default=ObjectStatus.PENDING
    )
    # Drifted: {field: {"old": now, "new": in git}} (gitops.plan.field_diff).
    diff = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    # When the status or its reason last changed.
    since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["repository", "kind", "name"], name="gitobject_repository_kind_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.status})"
