from __future__ import annotations

from django.db import models


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Mode(models.TextChoices):
    INFORM = "inform", "Inform (report only)"
    ENFORCE = "enforce", "Enforce (apply templates, block Keelson's own propagation)"


class RuleKind(models.TextChoices):
    OBJECT = "object", "Object rule (CEL over each matching object)"
    TEMPLATE = "template", "Object template (musthave / mustonlyhave / mustnothave)"
    CLUSTER = "cluster", "Cluster rule (CEL over the cluster)"


# What enforce mode does, per rule kind: said on the policy page and in the API.
ENFORCE_EFFECT = {
    RuleKind.OBJECT: (
        "Blocks Keelson's own propagation: an application rollout to a targeted cluster "
        "fails before anything is applied if one of its objects violates the rule. Objects "
        "that reach the cluster any other way are reported, not blocked or changed."
    ),
    RuleKind.TEMPLATE: (
        "Remediates: must-have and must-only-have objects are applied (server-side apply), "
        "must-not-have objects are deleted."
    ),
    RuleKind.CLUSTER: "Reports only: there is nothing Keelson can change to meet it.",
}


class ComplianceType(models.TextChoices):
    MUSTHAVE = "musthave", "Must have"
    MUSTONLYHAVE = "mustonlyhave", "Must only have"
    MUSTNOTHAVE = "mustnothave", "Must not have"


class ResultStatus(models.TextChoices):
    COMPLIANT = "compliant", "Compliant"
    NONCOMPLIANT = "noncompliant", "Noncompliant"
    ERROR = "error", "Error"


class ActionKind(models.TextChoices):
    APPLY = "apply", "Apply (server-side apply)"
    DELETE = "delete", "Delete"


class ActionStatus(models.TextChoices):
    PLANNED = "planned", "Planned (dry run)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ReportScope(models.TextChoices):
    FLEET = "fleet", "Fleet (every cluster of the team)"
    CLUSTER_SET = "cluster_set", "Cluster set"
    CLUSTER = "cluster", "One cluster"
    STANDARD = "standard", "Standard (policies tagged with it)"


class ReportFormat(models.TextChoices):
    HTML = "html", "HTML"
    PDF = "pdf", "PDF"
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


class SourceEngine(models.TextChoices):
    """Where an external policy's results come from (blank: Keelson's own policy)."""

    KYVERNO = "kyverno", "Kyverno"
    GATEKEEPER = "gatekeeper", "Gatekeeper"
    POLICY_REPORT = "policy-report", "Policy report"
