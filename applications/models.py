"""Applications (manifests with version history), their placement and its decisions."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import slug_validator


class Application(models.Model):
    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=63, validators=[slug_validator])
    description = models.TextField(blank=True)
    # Ordered per-cluster changes to the rendered manifests (applications.overrides).
    overrides = models.JSONField(default=list, blank=True)
    # How a new version or decision reaches the clusters (applications.spec.rollout_spec).
    rollout = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Declared in a Git repository (gitops): {"repository": id, "name": ..., "commit": sha}.
    # The API and pages refuse edits while it is set (core.managed).
    managed_by = models.JSONField(null=True, blank=True, editable=False)

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


class PlacementStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    # Nothing fits, and carrying that out would remove the application from every cluster
    # it runs on: it keeps running there until a user confirms the removal.
    UNSCHEDULABLE = "unschedulable", "Unschedulable"


class Placement(models.Model):
    application = models.OneToOneField(
        Application, on_delete=models.CASCADE, primary_key=True, related_name="placement"
    )
    spec = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=PlacementStatus.choices, default=PlacementStatus.SCHEDULED
    )
    status_reason = models.TextField(blank=True)
    status_since = models.DateTimeField(null=True, blank=True)
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


class RolloutPhase(models.TextChoices):
    APPLY = "apply", "Applying a step"
    WAIT = "wait", "Waiting for the step to be available"
    SOAK = "soak", "Watching the canary"
    PRUNE = "prune", "Removing the application from clusters that left"


class RolloutProgress(models.Model):
    """Where a rollout stands between two of its scheduled checks (`applications.rollout`):
    a health wait or a canary soak is a re-check sent with a countdown, not a sleeping task.
    `tick` counts the checks done; a check message carries the tick it was sent for and is
    dropped when the row has moved on (a duplicate, a redelivery after the check ended)."""

    operation = models.OneToOneField(
        "operations.Operation", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    tick = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=list)  # [[cluster name, ...], ...] in rollout order
    step = models.PositiveIntegerField(default=0)
    phase = models.CharField(max_length=8, choices=RolloutPhase.choices, default=RolloutPhase.APPLY)
    check_at = models.DateTimeField()  # the next check is due then
    deadline = models.DateTimeField(null=True, blank=True)  # of the health wait or soak
    changed = models.JSONField(default=list)  # ClusterWork ids changed so far (for a rollback)

    def __str__(self) -> str:
        return f"rollout {self.operation_id}: step {self.step} {self.phase}"


class WorkState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"  # objects written, workloads not yet available
    AVAILABLE = "available", "Available"
    DELIVERED = "delivered", "Delivered to the agent"  # pull mode: the agent applies it
    FAILED = "failed", "Failed"
    ORPHANED = "orphaned", "Left the decision; removal pending"


class ClusterWork(models.Model):
    """What one application should run in one cluster and what it does run there, as
    OCM's ManifestWork: desired version and replicas, the objects applied, and the status
    fed back from the cluster (available replicas, errors, drift corrections)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="works")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    desired_version = models.PositiveIntegerField()
    applied_version = models.PositiveIntegerField(null=True, blank=True)
    # The version the current rollout replaced, restored by a rollback (None: remove).
    previous_version = models.PositiveIntegerField(null=True, blank=True)
    previous_replicas = models.PositiveIntegerField(null=True, blank=True)
    replicas = models.PositiveIntegerField(null=True, blank=True)  # None: as the manifests say
    state = models.CharField(max_length=16, choices=WorkState.choices, default=WorkState.PENDING)
    desired_replicas = models.PositiveIntegerField(default=0)
    available_replicas = models.PositiveIntegerField(default=0)
    applied_objects = models.JSONField(default=list, blank=True)  # [{apiVersion, kind, ns, name}]
    message = models.TextField(blank=True)
    drift_corrections = models.PositiveIntegerField(default=0)
    synced_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application_id", "cluster_id"]
        constraints = [
            models.UniqueConstraint(fields=["application", "cluster"], name="work_unique")
        ]

    def __str__(self) -> str:
        return f"{self.application_id} in {self.cluster_id}"


class ClusterChange(models.Model):
    """What changed, for the candidate cache (`applications.cache`): one row per team and
    cluster, written only by database triggers (migration 0003), so every writer is seen —
    services, collection, agents, the admin, a queryset `update()`.

    The columns hold PostgreSQL transaction ids (`pg_current_xact_id()`) of the last change:
    `spec_xid` for what placement must see at once (identity, labels, taints, status,
    allocatable capacity, nodes, prices), `usage_xid` for requested CPU/memory, which moves
    with every collection and may be read with bounded staleness. `cluster_id` 0 means
    every cluster of the team (a rate card changed); team 0 means every team (list prices
    changed, or the cluster table was truncated)."""

    team_id = models.BigIntegerField()
    cluster_id = models.BigIntegerField()
    spec_xid = models.BigIntegerField()
    usage_xid = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team_id", "cluster_id"], name="clusterchange_unique")
        ]
        indexes = [
            models.Index(fields=["team_id", "spec_xid"], name="clusterchange_spec"),
            models.Index(fields=["team_id", "usage_xid"], name="clusterchange_usage"),
        ]

    def __str__(self) -> str:
        return f"change of cluster {self.cluster_id} (team {self.team_id})"
