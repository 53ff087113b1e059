"""States and kinds of update runs."""

from __future__ import annotations

from django.db import models


class ChangeKind(models.TextChoices):
    KUBERNETES_VERSION = "kubernetes_version", "Kubernetes version"
    NODE_POOL = "node_pool", "Node pool (image or instance type)"
    POLICY_MODE = "policy_mode", "Policy mode (inform to enforce)"
    APPLICATION_VERSION = "application_version", "Application version"


class RunState(models.TextChoices):
    DRAFT = "draft", "Draft (previewed, not started)"
    RUNNING = "running", "Running"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    PAUSED = "paused", "Paused"
    REVERTING = "reverting", "Reverting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REVERTED = "reverted", "Failed and reverted"
    ABORTED = "aborted", "Aborted"


RUN_FINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.REVERTED, RunState.ABORTED})


class StageState(models.TextChoices):
    PENDING = "pending", "Pending"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    RUNNING = "running", "Running"
    SOAKING = "soaking", "Soaking"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class ClusterState(models.TextChoices):
    PENDING = "pending", "Pending"
    WAITING_WINDOW = "waiting_window", "Waiting for its maintenance window"
    CHANGING = "changing", "Changing"
    GATING = "gating", "Checking health gates"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    REVERTING = "reverting", "Reverting"
    REVERTED = "reverted", "Reverted"
