from __future__ import annotations

from django.db import models


class Provider(models.TextChoices):
    AWS = "aws", "AWS"
    GCP = "gcp", "Google Cloud"
    AZURE = "azure", "Azure"
    ALIBABA = "alibaba", "Alibaba Cloud"
    ONPREM = "onprem", "On-premises"
    EDGE = "edge", "Edge"
    LOCAL = "local", "Local"
    OTHER = "other", "Other"


class ClusterMode(models.TextChoices):
    PUSH = "push", "Push (the hub calls the cluster)"
    PULL = "pull", "Pull (an agent calls the hub)"


class ClusterStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    READY = "ready", "Ready"
    DEGRADED = "degraded", "Degraded"
    UNREACHABLE = "unreachable", "Unreachable"


class CredentialKind(models.TextChoices):
    KUBECONFIG = "kubeconfig", "Kubeconfig"
    TOKEN = "token", "Bearer token and CA bundle"
    AGENT = "agent", "Pull-mode agent token"


class TaintEffect(models.TextChoices):
    NO_SELECT = "NoSelect", "NoSelect"
    PREFER_NO_SELECT = "PreferNoSelect", "PreferNoSelect"
    NO_SELECT_IF_NEW = "NoSelectIfNew", "NoSelectIfNew"
    NO_EXECUTE = "NoExecute", "NoExecute"


class RollupPeriod(models.TextChoices):
    HOUR = "hour", "Hourly"
    DAY = "day", "Daily"


class Lifecycle(models.TextChoices):
    """Where a provisioned cluster is in its life (registered-only clusters have none)."""

    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    SCALING = "scaling", "Scaling"
    UPGRADING = "upgrading", "Upgrading"
    DELETING = "deleting", "Deleting"
    FAILED = "failed", "Failed"


class EolState(models.TextChoices):
    """Where a cluster's Kubernetes version stands against its end of life (clusters/eol.py)."""

    PAST = "past", "Past end of life"
    SOON = "soon", "End of life within 90 days"
    SUPPORTED = "supported", "Supported"
    UNKNOWN = "unknown", "Unknown"
