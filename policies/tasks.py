"""Thin Celery wrappers over the policy services."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from core.celery import keelson_task
from operations.pipelines import pipeline_ran
from policies.models import ReportDefinition
from policies.services import compliance_counts
from policies.services.enforcement import clusters_enforce
from policies.services.evaluation import clusters_evaluate, policies_evaluate_fanout
from policies.services.external import clusters_external_collect
from policies.services.reports import report_generate


@keelson_task(queue="policies", time_limit=60)
def policies_evaluate_fanout_task() -> int:
    queued = policies_evaluate_fanout()
    pipeline_ran("policies")
    return queued


@keelson_task(queue="policies", idempotent=True, time_limit=900, soft_time_limit=840)
def policies_evaluate_batch_task(
    cluster_ids: list[int], policy_ids: list[int] | None = None, force: bool = False
) -> dict[str, Any]:
    """Evaluate, then remediate enforce-mode policies. Safe to run twice: a second run
    skips what is unchanged and finds nothing left to fix."""
    counts: dict[str, Any] = clusters_evaluate(
        cluster_ids=cluster_ids, policy_ids=policy_ids, force=force
    )
    counts["enforcement_actions"] = clusters_enforce(cluster_ids=cluster_ids)
    compliance_counts.compact(now=timezone.now())
    return counts


@keelson_task(queue="policies", idempotent=True, time_limit=300, soft_time_limit=280)
def policies_external_collect_task(cluster_ids: list[int]) -> dict[str, int]:
    """After a collection: record what Kyverno, Policy WG reports and Gatekeeper say of the
    clusters. Safe to run twice: an unchanged cluster writes nothing."""
    return clusters_external_collect(cluster_ids=cluster_ids)


@keelson_task(queue="reports", idempotent=True, time_limit=600)
def report_generate_task(definition_id: int) -> int | None:
    """Beat's entry for a report definition; a second run for the same minute finds the
    stored report."""
    definition = ReportDefinition.objects.select_related("team").filter(pk=definition_id).first()
    if definition is None or not definition.enabled:
        return None
    return report_generate(definition=definition).pk
