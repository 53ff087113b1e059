from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from operations.choices import FINAL_STATES, LogLevel, OperationState


class Operation(models.Model):
    """A unit of long-running work (provision, rollout, evaluation, report).

    `version` grows by one with every change and is the sequence number of the update
    streamed to browsers: a client that sees a gap re-fetches the snapshot.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.PENDING, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="operation_progress_le_100"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=OperationState.values), name="operation_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_repr} ({self.state})".strip()

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class OperationLogLine(models.Model):
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    text = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:80]


class ScheduleClaim(models.Model):
    """One periodic send of `name` in the interval starting at `interval_start`: beat
    claims the row before sending, so a beat taking over from a dead leader does not send
    the same interval again (fleet/beat.py)."""

    name = models.CharField(max_length=200)
    interval_start = models.DateTimeField()
    claimed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "interval_start"], name="schedule_claim_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.interval_start.isoformat()}"


class PipelineRun(models.Model):
    """When a periodic pipeline (collection fan-out, policy sweep, cost computation) last
    ran to its end; read by /healthz/pipeline (operations/pipelines.py)."""

    name = models.CharField(max_length=32, primary_key=True)
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_run_at.isoformat()}"
