"""The cluster registry: clusters, their credentials, sets, health timeline and history."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from accounts.models import slug_validator
from clusters.choices import (
    ClusterMode,
    ClusterStatus,
    CredentialKind,
    Lifecycle,
    Provider,
    RollupPeriod,
)
from clusters.labels import LabelSelector, validate_labels, validate_taints


class Cluster(models.Model):
    """A member cluster. Its credential lives in `ClusterCredential`, never on this row."""

    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.OTHER)
    region = models.CharField(max_length=64, blank=True, db_index=True)
    zone = models.CharField(max_length=64, blank=True)
    environment = models.CharField(max_length=64, blank=True, db_index=True)
    labels = models.JSONField(default=dict, blank=True, validators=[validate_labels])
    taints = models.JSONField(default=list, blank=True, validators=[validate_taints])
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="clusters")
    mode = models.CharField(max_length=8, choices=ClusterMode.choices, default=ClusterMode.PUSH)
    api_server_url = models.URLField(max_length=500, blank=True)
    insecure_skip_tls_verify = models.BooleanField(
        default=False, help_text="Only when the operator chose it for this cluster."
    )

    status = models.CharField(
        max_length=16, choices=ClusterStatus.choices, default=ClusterStatus.UNKNOWN, db_index=True
    )
    status_reason = models.CharField(max_length=64, blank=True)
    status_message = models.CharField(max_length=500, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Hysteresis: the status the probes point to and how many probes in a row agreed.
    pending_status = models.CharField(max_length=16, blank=True)
    pending_count = models.PositiveIntegerField(default=0)
    conditions = models.JSONField(default=list, blank=True)

    kubernetes_version = models.CharField(max_length=32, blank=True)
    node_count = models.PositiveIntegerField(default=0)
    nodes_ready = models.PositiveIntegerField(default=0)
    capacity_cpu_millis = models.BigIntegerField(default=0)
    capacity_memory_bytes = models.BigIntegerField(default=0)
    capacity_gpu = models.PositiveIntegerField(default=0)
    capacity_pods = models.PositiveIntegerField(default=0)
    allocatable_cpu_millis = models.BigIntegerField(default=0)
    allocatable_memory_bytes = models.BigIntegerField(default=0)
    allocatable_gpu = models.PositiveIntegerField(default=0)
    allocatable_pods = models.PositiveIntegerField(default=0)
    requested_cpu_millis = models.BigIntegerField(default=0)
    requested_memory_bytes = models.BigIntegerField(default=0)
    api_latency_ms = models.FloatField(null=True, blank=True)

    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_probe_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["provider", "region"]),
            models.Index(fields=["team", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ClusterStatus.values), name="cluster_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(provider__in=Provider.values), name="cluster_provider_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def title(self) -> str:
        return self.display_name or self.name


class ClusterCredential(models.Model):
    """How the hub reaches a push-mode cluster, encrypted with the key ring (core.crypto).

    `version` grows on every change: cached API clients are keyed by it.
    """

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="credential")
    kind = models.CharField(max_length=16, choices=CredentialKind.choices)
    ciphertext = models.TextField()
    context = models.CharField(max_length=253, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} credential of {self.cluster_id}"


class AgentToken(models.Model):
    """A pull-mode token, stored as a SHA-256 hash. `bootstrap` tokens are one-time and
    short-lived; an exchange turns one into a long-lived `agent` token."""

    class Kind(models.TextChoices):
        BOOTSTRAP = "bootstrap", "Bootstrap (one-time)"
        AGENT = "agent", "Agent"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="agent_tokens")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} token {self.prefix}… of {self.cluster_id}"


class ClusterSet(models.Model):
    """A named group of clusters: explicit members, a label selector, or both (union)."""

    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    description = models.TextField(blank=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="cluster_sets")
    selector = models.CharField(max_length=1000, blank=True)
    members = models.ManyToManyField(Cluster, blank=True, related_name="cluster_sets")
    created_at = models.DateTimeField(auto_now_add=True)
    # Declared in a Git repository (gitops): {"repository": id, "name": ..., "commit": sha}.
    # The API refuses edits while it is set (core.managed).
    managed_by = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.selector:
            LabelSelector.parse(self.selector)


class ClusterInventory(models.Model):
    """The last full inventory collected from a cluster (nodes, namespaces, workloads)."""

    cluster = models.OneToOneField(
        Cluster, on_delete=models.CASCADE, primary_key=True, related_name="inventory"
    )
    collected_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"inventory of {self.cluster_id}"


class ClusterTransition(models.Model):
    """One status change in a cluster's timeline."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="transitions")
    at = models.DateTimeField(db_index=True)
    from_status = models.CharField(max_length=16, choices=ClusterStatus.choices)
    to_status = models.CharField(max_length=16, choices=ClusterStatus.choices)
    reason = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["cluster", "-at"])]

    def __str__(self) -> str:
        return f"{self.cluster_id}: {self.from_status} → {self.to_status}"


class HealthSample(models.Model):
    """One probe's measurements, written in bulk; rolled up into `HealthRollup`."""

    id = models.BigAutoField(primary_key=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ClusterStatus.choices)
    api_latency_ms = models.FloatField(null=True)
    nodes_total = models.PositiveIntegerField(default=0)
    nodes_ready = models.PositiveIntegerField(default=0)
    pods_running = models.PositiveIntegerField(default=0)
    pods_pending = models.PositiveIntegerField(default=0)
    pods_failed = models.PositiveIntegerField(default=0)
    cpu_requested_millis = models.BigIntegerField(default=0)
    memory_requested_bytes = models.BigIntegerField(default=0)
    warning_events = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["cluster", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.cluster_id} at {self.at}: {self.status}"


class HealthRollup(models.Model):
    """Hourly or daily aggregate of health samples (kept longer than raw samples). History
    outlives the cluster: deregistration sets `cluster` to null and the row keeps the
    cluster's name and team (for scoping)."""

    id = models.BigAutoField(primary_key=True)
    cluster = models.ForeignKey(Cluster, null=True, on_delete=models.SET_NULL, related_name="+")
    cluster_name = models.CharField(max_length=63, default="")
    team = models.ForeignKey(
        "accounts.Team", null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    period = models.CharField(max_length=8, choices=RollupPeriod.choices)
    start = models.DateTimeField()
    samples = models.PositiveIntegerField()
    ready_samples = models.PositiveIntegerField()
    degraded_samples = models.PositiveIntegerField()
    unreachable_samples = models.PositiveIntegerField()
    api_latency_avg_ms = models.FloatField(null=True)
    api_latency_max_ms = models.FloatField(null=True)
    nodes_ready_min = models.PositiveIntegerField()
    nodes_total_max = models.PositiveIntegerField()
    pods_running_avg = models.FloatField()
    pods_failed_max = models.PositiveIntegerField()
    cpu_requested_avg_millis = models.FloatField()
    memory_requested_avg_bytes = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "period", "start"], name="healthrollup_unique_bucket"
            )
        ]
        indexes = [models.Index(fields=["period", "start"])]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.period} {self.start}"


class ClusterTemplate(models.Model):
    """A saved cluster spec (provider, region, version, node pools) to create clusters from."""

    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    description = models.TextField(blank=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    spec = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ClusterProvisioning(models.Model):
    """How a cluster Keelson created was built: its provider, spec and provider state."""

    cluster = models.OneToOneField(
        Cluster, on_delete=models.CASCADE, primary_key=True, related_name="provisioning"
    )
    provider = models.CharField(max_length=16)
    spec = models.JSONField()
    state = models.JSONField(default=dict, blank=True)
    lifecycle = models.CharField(
        max_length=16, choices=Lifecycle.choices, default=Lifecycle.PROVISIONING
    )
    template = models.ForeignKey(
        ClusterTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider} provisioning of {self.cluster_id}"


class EolTable(models.Model):
    """The Kubernetes end-of-life table that `manage.py keelson_update_eol` installed,
    replacing the shipped one (clusters/eol.py); one row."""

    data = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"end-of-life table of {self.updated_at:%Y-%m-%d}"
