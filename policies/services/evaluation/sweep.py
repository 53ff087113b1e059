"""The sweep and the "evaluate" button: which clusters go out in which batches, and when a
policy is evaluated inline rather than queued."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.cache import cache

from clusters.choices import ClusterMode
from clusters.models import Cluster
from core.celery import task_send
from policies import cel, celcost
from policies.external.guard import refuse_external
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation.run import cluster_evaluate
from policies.services.evaluation.targeting import policy_clusters

INLINE_CLUSTERS = 20  # `policy_evaluate` answers inline up to this many clusters
EVALUATE_INTERVAL = 600  # seconds between sweeps (CELERY_BEAT_SCHEDULE "policies-evaluate")
# Clusters per task. Each lists ~10 kinds (~500 API calls a batch); a batch's own queries
# (policies, stamps, newest results, credentials, enforcement) cost about 25 ms of worker
# CPU whatever its size, 1.2 ms a cluster at 20, 0.75 ms at 50.
BATCH_SIZE = 50
# Sent by name: policies.tasks imports this module (core.celery.task_send).
EVALUATE_TASK = "policies.tasks.policies_evaluate_batch_task"


def agent_evaluate_key(cluster_id: int) -> str:
    """Cache key asking a pull cluster's agent to evaluate at its next heartbeat."""
    return f"policies:agent-evaluate:{cluster_id}"


@dataclass
class Evaluated:
    """What `policy_evaluate` did: results stored now, or clusters queued for a worker."""

    results: list[PolicyEvaluation]
    queued: int = 0


def policy_evaluate(*, policy: Policy) -> Evaluated:
    """Evaluate one policy now on every cluster it targets, forced (the API's and the
    page's "evaluate"). Past INLINE_CLUSTERS clusters the work is queued in batches
    rather than holding a web request for minutes."""
    refuse_external(policy)  # its engine judges it, at each collection
    clusters = list(policy_clusters(policy=policy).select_related("team").order_by("pk"))
    # A pull cluster's agent evaluates it within a minute (policies.services.agent).
    cache.set_many(
        {agent_evaluate_key(c.pk): True for c in clusters if c.mode != ClusterMode.PUSH},
        EVALUATE_INTERVAL,
    )
    clusters = [c for c in clusters if c.mode == ClusterMode.PUSH]
    if len(clusters) > INLINE_CLUSTERS:
        ids = [c.pk for c in clusters]
        for start in range(0, len(ids), BATCH_SIZE):
            task_send(
                EVALUATE_TASK,
                args=[ids[start : start + BATCH_SIZE], [policy.pk], True],
                expires=EVALUATE_INTERVAL,
            )
        return Evaluated(results=[], queued=len(ids))
    results: list[PolicyEvaluation] = []
    run_id = uuid.uuid4()
    with cel.budget(celcost.REQUEST_BUDGET):  # a web request: bounded CEL work
        for cluster in clusters:
            results += cluster_evaluate(
                cluster=cluster, policy_ids=[policy.pk], force=True, run_id=run_id
            )
    return Evaluated(results=results)


def sweep_batches(*, batch_size: int) -> list[list[int]]:
    """Ids of the push-mode clusters whose team has an enabled policy of its own, in
    batches."""
    ids = list(
        Cluster.objects.filter(
            mode=ClusterMode.PUSH,
            team__policies__enabled=True,
            team__policies__source_engine="",  # external ones are read at collection
        )
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def policies_evaluate_fanout() -> int:
    """Enqueue one evaluation task per batch of clusters; returns the number of batches."""
    batches = sweep_batches(batch_size=BATCH_SIZE)
    for batch in batches:
        task_send(EVALUATE_TASK, args=[batch], expires=EVALUATE_INTERVAL)
    return len(batches)
