"""Prices (effective-dated: a change applies from its date, never retroactively), cost
allocations per cluster, hour and namespace, and budgets."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from accounts.models import slug_validator


def money(**options: Any) -> Any:
    """Amounts in the currency of the price list, to the micro-unit (sums stay exact)."""
    return models.DecimalField(max_digits=18, decimal_places=6, **options)


class InstancePrice(models.Model):
    """A list price per provider, region ('' for any region) and instance type."""

    provider = models.CharField(max_length=16)
    region = models.CharField(max_length=64, blank=True)
    instance_type = models.CharField(max_length=64)
    hourly = money()
    valid_from = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "region", "instance_type", "valid_from"],
                name="instanceprice_unique",
            )
        ]
        indexes = [models.Index(fields=["provider", "instance_type"])]

    def __str__(self) -> str:
        return f"{self.provider}/{self.region or '*'}/{self.instance_type} {self.hourly}/h"


class RateCard(models.Model):
    """Custom prices (on-premises, edge, negotiated): per instance type, or per core-hour,
    GB-hour and GPU-hour. A new version (same name, later valid_from) changes prices from
    its date on."""

    name = models.CharField(max_length=63, validators=[slug_validator])
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    valid_from = models.DateField()
    cpu_core_hour = money()
    ram_gb_hour = money()
    gpu_hour = money(default=0)
    storage_gb_month = money(default=0)
    instance_prices = models.JSONField(default=dict, blank=True)
    # Set while a Git repository declares it (core.managed): edits from the API and pages
    # are refused.
    managed_by = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "valid_from"], name="ratecard_unique_version")
        ]
        ordering = ["name", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.name} from {self.valid_from}"


class ClusterPricing(models.Model):
    """How a cluster is priced from `valid_from` on (the latest row not after a date
    applies on that date)."""

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    valid_from = models.DateField()
    rate_card = models.CharField(max_length=63, blank=True, help_text="A rate card's name.")
    # As OpenCost's `discount`: off the CPU and RAM part of every node's price. GPUs have
    # their own (OpenCost discounts them never; 0 here by default, the same).
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    gpu_discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    spot = models.BooleanField(default=False)
    spot_discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=60)
    control_plane_monthly = money(null=True, blank=True)
    storage_gb_month = money(null=True, blank=True)
    share_idle = models.BooleanField(
        default=False, help_text="Share idle capacity back to the namespaces."
    )
    share_idle_by = models.CharField(
        max_length=8,
        choices=[
            ("resource", "By resource (OpenCost: CPU idle by CPU cost, RAM by RAM, GPU by GPU)"),
            ("cost", "By each namespace's total cost"),
        ],
        default="resource",
    )
    # Shared costs (OpenCost's shareNamespaces, sharedOverhead, shareSplit): these
    # namespaces' cost and a fixed monthly overhead go to the cluster's other namespaces.
    shared_namespaces = models.JSONField(default=list, blank=True)
    shared_overhead_monthly = money(default=0)
    share_split = models.CharField(
        max_length=8,
        choices=[("weighted", "By each namespace's cost"), ("even", "Evenly")],
        default="weighted",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "valid_from"], name="clusterpricing_unique"),
            models.CheckConstraint(
                condition=models.Q(discount_percent__gte=0, discount_percent__lte=100),
                name="clusterpricing_discount_range",
            ),
            models.CheckConstraint(
                condition=models.Q(gpu_discount_percent__gte=0, gpu_discount_percent__lte=100),
                name="clusterpricing_gpu_discount_range",
            ),
        ]
        ordering = ["cluster", "-valid_from"]

    def __str__(self) -> str:
        return f"pricing of {self.cluster_id} from {self.valid_from}"


class CostAllocation(models.Model):
    """One namespace's (or idle, or the control plane's) cost in one cluster for one hour.
    Cluster name, team, provider, region and environment are copied from the cluster at
    that hour, so rollups need no join and history keeps who owned what. The rows outlive
    the cluster (its deregistration sets `cluster` to null): a past total never changes."""

    id = models.BigAutoField(primary_key=True)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    cluster_name = models.CharField(max_length=63, default="")
    hour = models.DateTimeField()
    namespace = models.CharField(max_length=253)
    # The pods' controller (`Deployment/web`; "" for bare pods, idle, storage, fees) and
    # their labels; the namespace's labels at that hour. Cost groups by any of them.
    controller = models.CharField(max_length=253, default="", blank=True)
    labels = models.JSONField(default=dict, blank=True)
    namespace_labels = models.JSONField(default=dict, blank=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    team_name = models.CharField(max_length=63, default="")
    provider = models.CharField(max_length=16)
    region = models.CharField(max_length=64, blank=True)
    environment = models.CharField(max_length=64, blank=True)
    cpu_cost = money()
    ram_cost = money()
    gpu_cost = money()
    storage_cost = money(default=0)
    shared_cost = money(default=0)
    load_balancer_cost = money(default=0)
    total_cost = money()
    cpu_core_hours = money(default=0)
    ram_gb_hours = money(default=0)
    gpu_hours = money(default=0)
    # Requests and measured usage (metrics.k8s.io): efficiency = usage / request. Usage is
    # null where the cluster serves no metrics (and on idle and control-plane rows).
    cpu_request_core_hours = money(default=0)
    ram_request_gb_hours = money(default=0)
    cpu_usage_core_hours = money(null=True)
    ram_usage_gb_hours = money(null=True)
    # Why the figure is what it is (services.provenance): how the nodes were priced (list
    # price, rate card and version, estimate), the pricing rule, spot; `backfilled` when
    # computed later from a stored snapshot. `estimated` when any of that is an estimate.
    estimated = models.BooleanField(default=False)
    provenance = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "hour", "namespace", "controller", "labels"],
                name="costallocation_unique",
            )
        ]
        indexes = [
            models.Index(fields=["hour"]),
            models.Index(fields=["team", "hour"]),
            models.Index(fields=["cluster", "hour"]),
            models.Index(fields=["cluster_name", "hour"]),
        ]

    def __str__(self) -> str:
        return f"{self.cluster_name} {self.hour} {self.namespace}: {self.total_cost}"


class CostSnapshot(models.Model):
    """What a cluster's cost of one hour was computed from: the part of its inventory
    cost reads (nodes, pods' requests and usage, volumes, load balancers, namespaces). The
    hourly computation keeps the last one of each hour; a missed hour is backfilled from
    the latest snapshot at or before it (services: `backfill`)."""

    id = models.BigAutoField(primary_key=True)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    hour = models.DateTimeField()
    collected_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "hour"], name="costsnapshot_unique")
        ]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"snapshot of {self.cluster_id} at {self.hour}"


class Budget(models.Model):
    """A monthly budget for a team or a cluster set; alerts when the month's forecast
    exceeds it."""

    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    cluster_set = models.ForeignKey(
        "clusters.ClusterSet", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    monthly_amount = models.DecimalField(max_digits=14, decimal_places=2)
    # Set while a Git repository declares it (core.managed): edits from the API and pages
    # are refused.
    managed_by = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BudgetAlert(models.Model):
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField()
    forecast = models.DecimalField(max_digits=14, decimal_places=2)
    spent = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "month"], name="budgetalert_once_a_month")
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.month}: forecast {self.forecast}"
