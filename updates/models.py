"""Update strategies, maintenance windows, update runs with their stages and clusters.

A run copies its strategy's stages when it is created (`stages`): editing the strategy
later does not change a run already previewed or under way.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from accounts.models import slug_validator
from updates.choices import ChangeKind, ClusterState, RunState, StageState

_USER = settings.AUTH_USER_MODEL


class UpdateStrategy(models.Model):
    """Reusable, per team: ordered stages, each a list of groups of clusters (by cluster set
    or label selector) with a maximum changed at once per group, a soak time after the
    stage and an optional approval before it. `stages` is validated by
    `updates.strategy.parse_stages`."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63, validators=[slug_validator])
    description = models.CharField(max_length=500, blank=True)
    stages = models.JSONField(default=list)
    created_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="updatestrategy_name_per_team")
        ]

    def __str__(self) -> str:
        return self.name


class MaintenanceWindow(models.Model):
    """A recurring weekly window in a time zone, for the clusters of a cluster set: a run
    starts a cluster's change only inside one of its windows (a cluster in no windowed set
    may change at any time). `days` are ISO weekdays (1 = Monday … 7 = Sunday)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63, validators=[slug_validator])
    cluster_set = models.ForeignKey(
        "clusters.ClusterSet", on_delete=models.CASCADE, related_name="+"
    )
    days = models.JSONField(default=list)
    start_time = models.TimeField()
    duration_minutes = models.PositiveIntegerField()
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], name="maintenancewindow_name_per_team"
            ),
            models.CheckConstraint(
                condition=models.Q(duration_minutes__gte=1, duration_minutes__lte=7 * 24 * 60),
                name="maintenancewindow_duration_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UpdateRun(models.Model):
    """One change applied stage by stage to the clusters its strategy's groups select.

    `change_params` are the change kind's normalized parameters (updates.changes);
    `gates` the health gates' settings (updates.gates); `scope` narrows the clusters
    (e.g. {"eol": "past"}: only clusters past their version's end of life). The run's
    progress lives in its stages and clusters; `operation` is the Operation that shows it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    strategy = models.ForeignKey(
        UpdateStrategy, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    stages = models.JSONField(default=list)
    change_kind = models.CharField(max_length=32, choices=ChangeKind.choices)
    change_params = models.JSONField(default=dict)
    gates = models.JSONField(default=dict, blank=True)
    scope = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.DRAFT)
    current_stage = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    # The engine's bookkeeping (updates/engine.py): `tick` counts the checks done and a
    # check message carries the tick it was sent for (a duplicate finds it moved on);
    # `check_at` is when the next check is due.
    tick = models.PositiveIntegerField(default=0, db_default=0)
    check_at = models.DateTimeField(null=True, blank=True)
    # Set by an abort (or the operation's cancel): no cluster starts; the run ends
    # aborted once the changes under way have finished.
    abort_requested = models.BooleanField(default=False, db_default=False)
    # Why the run stops (a change or a gate failed): no cluster starts; once the changes
    # under way have finished, the changed clusters are reverted (or the run fails).
    failure = models.CharField(max_length=500, blank=True, default="", db_default="")
    operation = models.OneToOneField(
        "operations.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=RunState.values), name="updaterun_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(change_kind__in=ChangeKind.values),
                name="updaterun_change_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UpdateRunStage(models.Model):
    """One stage of a run: its approval (if the strategy asks for one) and soak."""

    run = models.ForeignKey(UpdateRun, on_delete=models.CASCADE, related_name="run_stages")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=63)
    state = models.CharField(max_length=20, choices=StageState.choices, default=StageState.PENDING)
    approval_required = models.BooleanField(default=False)
    approved_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    soak_seconds = models.PositiveIntegerField(default=0)
    soak_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="updaterunstage_once"),
            models.CheckConstraint(
                condition=models.Q(state__in=StageState.values), name="updaterunstage_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.index} {self.name}"


class UpdateRunCluster(models.Model):
    """One cluster's change within a run. `change_state` is what the change kind keeps
    between checks (e.g. the child Operation it started); `baseline` what the health gates
    saw before the change."""

    run = models.ForeignKey(UpdateRun, on_delete=models.CASCADE, related_name="run_clusters")
    stage_index = models.PositiveSmallIntegerField()
    group = models.CharField(max_length=63)
    position = models.PositiveIntegerField(default=0)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cluster_name = models.CharField(max_length=63)
    state = models.CharField(
        max_length=20, choices=ClusterState.choices, default=ClusterState.PENDING
    )
    from_value = models.CharField(max_length=200, blank=True)
    to_value = models.CharField(max_length=200, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)
    change_state = models.JSONField(default=dict, blank=True)
    baseline = models.JSONField(default=dict, blank=True)
    # What `Change.revert` returned, once the cluster's revert has started (None: not yet).
    revert_state = models.JSONField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "stage_index", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "cluster_name"], name="updateruncluster_once"),
            models.CheckConstraint(
                condition=models.Q(state__in=ClusterState.values),
                name="updateruncluster_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.cluster_name} ({self.state})"
