"""Evaluating policies on clusters and storing the results (full history).

For one cluster: find the enabled policies that target it, drop those already judged at
the same policy generation and inventory stamp (unless forced), list every kind the rest
need once through discovery, judge each policy over that snapshot, and store one result
per policy in one transaction. A cluster that cannot be read gets an `error` result per
policy saying why; one object a rule cannot judge is recorded against that object.

The inventory stamp is the time of the cluster's last inventory collection: a new
collection may have seen anything change, so it re-opens every policy for that cluster,
while a policy edit (new generation) re-opens only that policy.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from clusters.choices import ClusterMode
from clusters.kube.client import ClusterConnectError
from clusters.labels import LabelSelector
from clusters.models import Cluster, ClusterInventory
from clusters.services.credentials import cluster_api_client
from clusters.services.lifecycle import cluster_set_clusters
from fleet.placement.models import ClusterWork
from policies.choices import Mode, ResultStatus
from policies.engine import Snapshot, judge, kinds_needed
from policies.kube import ClusterReader
from policies.models import Policy, PolicyEvaluation

logger = logging.getLogger(__name__)
MAX_LISTED = 500  # violations and errors listed per result; the totals are always exact


def policy_clusters(*, policy: Policy) -> QuerySet[Cluster]:
    """The clusters a policy targets: its team's clusters, narrowed to where the
    application named by `placement` runs (if any), to the union of its cluster sets (if
    any) and then to its selector (if any). A placement whose application is gone targets
    nothing (fail closed rather than widen to the whole team)."""
    query = Cluster.objects.filter(team_id=policy.team_id)
    if policy.placement:
        query = query.filter(
            pk__in=ClusterWork.objects.filter(
                application__team_id=policy.team_id, application__name=policy.placement
            ).values("cluster_id")
        )
    sets = list(policy.cluster_sets.all())
    if sets:
        members = Cluster.objects.none()
        for cluster_set in sets:
            members = members | cluster_set_clusters(cluster_set=cluster_set)
        query = query.filter(pk__in=members.values("pk"))
    if policy.cluster_selector:
        query = query.filter(LabelSelector.parse(policy.cluster_selector).to_q())
    return query


def policy_targets(policy: Policy, cluster: Cluster) -> bool:
    """Whether `policy` targets `cluster`. A policy with no placement, cluster set nor
    selector targets its whole team: answered without a query (a sweep asks this for
    every policy of every cluster)."""
    if not (policy.placement or policy.cluster_selector or policy.cluster_sets.all()):
        return cluster.team_id == policy.team_id
    return policy_clusters(policy=policy).filter(pk=cluster.pk).exists()


def inventory_stamp(cluster: Cluster) -> str:
    collected = (
        ClusterInventory.objects.filter(cluster=cluster)
        .values_list("collected_at", flat=True)
        .first()
    )
    return collected.isoformat() if collected else ""


def _version_number(text: Any) -> int:
    match = re.match(r"\d+", str(text or ""))
    return int(match.group()) if match else 0


def cluster_facts(cluster: Cluster, version: dict[str, Any]) -> dict[str, Any]:
    """The cluster as cluster rules see it (`cluster.version.minor >= 29`, ...)."""
    return {
        "name": cluster.name,
        "labels": dict(cluster.labels),
        "provider": cluster.provider,
        "region": cluster.region,
        "environment": cluster.environment,
        "version": {
            "major": _version_number(version.get("major")),
            "minor": _version_number(version.get("minor")),
            "gitVersion": str(version.get("gitVersion") or ""),
        },
        "nodeCount": cluster.node_count,
        "nodesReady": cluster.nodes_ready,
        "capacity": {
            "cpuMillis": cluster.capacity_cpu_millis,
            "memoryBytes": cluster.capacity_memory_bytes,
            "pods": cluster.capacity_pods,
        },
        "allocatable": {
            "cpuMillis": cluster.allocatable_cpu_millis,
            "memoryBytes": cluster.allocatable_memory_bytes,
            "pods": cluster.allocatable_pods,
        },
    }


@dataclass
class Read:
    snapshot: Snapshot
    failed: dict[tuple[str, str], str]


def read_cluster(reader: ClusterReader, cluster: Cluster, policies: list[Policy]) -> Read:
    """List each kind the policies need once. A kind that fails is remembered so only
    the policies needing it get an error."""
    kinds = list(
        dict.fromkeys(
            kind for p in policies for rule in p.rules.all() for kind in kinds_needed(rule)
        )
    )
    objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
    namespaced: dict[tuple[str, str], bool] = {}
    failed: dict[tuple[str, str], str] = {}
    for key in kinds:
        try:
            resource = reader.resource(*key)
            namespaced[key] = bool(resource is not None and resource.namespaced)
            objects[key] = reader.list(*key)
        except ClusterConnectError as error:
            failed[key] = error.message
    version = reader.version()
    return Read(Snapshot(objects, namespaced, cluster_facts(cluster, version)), failed)


def _last_results(cluster: Cluster, policies: list[Policy]) -> dict[int, tuple[int, str]]:
    newest = PolicyEvaluation.objects.filter(policy=OuterRef("policy"), cluster=cluster).order_by(
        "-evaluated_at", "-id"
    )
    rows = PolicyEvaluation.objects.filter(
        cluster=cluster,
        policy__in=policies,
        id=Subquery(newest.values("id")[:1]),
    ).values_list("policy_id", "policy_generation", "inventory_stamp")
    return {policy_id: (generation, stamp) for policy_id, generation, stamp in rows}


def latest_results(
    *, cluster: Cluster, noncompliant_enforced: bool = False
) -> QuerySet[PolicyEvaluation]:
    """The newest result of each policy on the cluster."""
    newest = PolicyEvaluation.objects.filter(policy=OuterRef("policy"), cluster=cluster).order_by(
        "-evaluated_at", "-id"
    )
    query = PolicyEvaluation.objects.filter(
        cluster=cluster, id=Subquery(newest.values("id")[:1])
    ).select_related("policy__team")
    if noncompliant_enforced:
        query = query.filter(
            status=ResultStatus.NONCOMPLIANT, policy__mode=Mode.ENFORCE, policy__enabled=True
        )
    return query


def applicable_policies(cluster: Cluster, policy_ids: list[int] | None = None) -> list[Policy]:
    query = Policy.objects.filter(team_id=cluster.team_id, enabled=True).prefetch_related(
        "rules", "cluster_sets"
    )
    if policy_ids is not None:
        query = query.filter(pk__in=policy_ids)
    return [policy for policy in query if policy_targets(policy, cluster)]


# Namespace of the advisory locks that keep one evaluation per cluster at a time.
_LOCK_CLASS = 0x706F6C  # "pol"
# How long a batch waits for a cluster another session holds (a dying one, typically)
# before leaving the cluster to the next sweep.
BATCH_LOCK_WAIT = 15.0


@contextmanager
def _cluster_lock(cluster_id: int, *, wait: float = 0.0) -> Iterator[bool]:
    """A session-level advisory lock (not held across a transaction: evaluation talks to
    the cluster for a while). Yields False when another worker still holds it after
    `wait` seconds (a worker killed mid-evaluation frees it once PostgreSQL ends its
    session, which can take a moment)."""
    deadline = time.monotonic() + wait
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, cluster_id])
            acquired = bool(cursor.fetchone()[0])
        if acquired or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, cluster_id])


def cluster_evaluate(
    *,
    cluster: Cluster,
    policy_ids: list[int] | None = None,
    force: bool = False,
    run_id: uuid.UUID | None = None,
    lock_wait: float = 0.0,
) -> list[PolicyEvaluation]:
    """Evaluate the cluster's applicable policies (or only `policy_ids`); returns the
    stored results (none for policies skipped as unchanged, nor when another worker is
    evaluating this cluster right now: its results will be as fresh)."""
    with _cluster_lock(cluster.pk, wait=lock_wait) as acquired:
        if not acquired:
            return []
        return _cluster_evaluate(cluster, policy_ids, force, run_id or uuid.uuid4())


def _cluster_evaluate(
    cluster: Cluster, policy_ids: list[int] | None, force: bool, run_id: uuid.UUID
) -> list[PolicyEvaluation]:
    policies = applicable_policies(cluster, policy_ids)
    stamp = inventory_stamp(cluster)
    if not force and stamp:
        last = _last_results(cluster, policies)
        policies = [p for p in policies if last.get(p.pk) != (p.generation, stamp)]
    if not policies:
        return []
    results: list[PolicyEvaluation] = []
    try:
        if cluster.mode != ClusterMode.PUSH:
            raise ClusterConnectError(
                "invalid", "Pull-mode clusters are not evaluated from the hub yet."
            )
        read = read_cluster(ClusterReader(cluster_api_client(cluster=cluster)), cluster, policies)
    except ClusterConnectError as error:
        results = [_row(p, cluster, run_id, stamp, force, error=error.message) for p in policies]
    else:
        for policy in policies:
            rules = list(policy.rules.all())
            broken = sorted(
                {read.failed[k] for r in rules for k in kinds_needed(r) if k in read.failed}
            )
            if broken:
                results.append(_row(policy, cluster, run_id, stamp, force, error=broken[0]))
                continue
            judgement = judge(rules, read.snapshot)
            results.append(_row(policy, cluster, run_id, stamp, force, judgement=judgement))
    with transaction.atomic():
        PolicyEvaluation.objects.bulk_create(results)
    return results


def _row(
    policy: Policy,
    cluster: Cluster,
    run_id: uuid.UUID,
    stamp: str,
    force: bool,
    *,
    error: str = "",
    judgement: Any = None,
) -> PolicyEvaluation:
    row = PolicyEvaluation(
        policy=policy,
        cluster=cluster,
        run_id=run_id,
        policy_generation=policy.generation,
        inventory_stamp=stamp,
        forced=force,
        evaluated_at=timezone.now(),
    )
    if judgement is None:
        row.status = ResultStatus.ERROR
        row.message = f"The cluster could not be read: {error}"[:1000]
        return row
    row.objects_checked = judgement.checked
    row.violations = judgement.violations[:MAX_LISTED]
    row.errors = judgement.errors[:MAX_LISTED]
    row.violations_total = len(judgement.violations)
    row.errors_total = len(judgement.errors)
    if judgement.violations:
        row.status = ResultStatus.NONCOMPLIANT
        row.message = f"{len(judgement.violations)} violation(s) in {judgement.checked} checked"
    elif judgement.errors:
        row.status = ResultStatus.ERROR
        row.message = f"{len(judgement.errors)} object(s) could not be judged"
    else:
        row.status = ResultStatus.COMPLIANT
        row.message = f"{judgement.checked} checked, no violation"
    if judgement.violations and judgement.errors:
        row.message += f"; {len(judgement.errors)} could not be judged"
    return row


def clusters_evaluate(
    *, cluster_ids: list[int], policy_ids: list[int] | None = None, force: bool = False
) -> dict[str, int]:
    """One batch of the sweep: each cluster in turn; one failing cluster never stops
    the others. Returns counts by status."""
    counts: dict[str, int] = {}
    run_id = uuid.uuid4()
    for cluster in Cluster.objects.filter(pk__in=cluster_ids).select_related("team"):
        try:
            rows = cluster_evaluate(
                cluster=cluster,
                policy_ids=policy_ids,
                force=force,
                run_id=run_id,
                lock_wait=BATCH_LOCK_WAIT,
            )
        except Exception:
            logger.exception("policy evaluation of cluster %s failed", cluster.name)
            counts["failed_clusters"] = counts.get("failed_clusters", 0) + 1
            continue
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
    return counts


INLINE_CLUSTERS = 20  # `policy_evaluate` answers inline up to this many clusters


@dataclass
class Evaluated:
    """What `policy_evaluate` did: results stored now, or clusters queued for a worker."""

    results: list[PolicyEvaluation]
    queued: int = 0


def policy_evaluate(*, policy: Policy) -> Evaluated:
    """Evaluate one policy now on every cluster it targets, forced (the API's and the
    page's "evaluate"). Past INLINE_CLUSTERS clusters the work is queued in batches
    rather than holding a web request for minutes."""
    from policies.tasks import policies_evaluate_batch_task

    clusters = list(policy_clusters(policy=policy).select_related("team").order_by("pk"))
    if len(clusters) > INLINE_CLUSTERS:
        ids = [c.pk for c in clusters]
        for start in range(0, len(ids), BATCH_SIZE):
            policies_evaluate_batch_task.apply_async(
                args=[ids[start : start + BATCH_SIZE], [policy.pk], True],
                expires=EVALUATE_INTERVAL,
            )
        return Evaluated(results=[], queued=len(ids))
    results: list[PolicyEvaluation] = []
    run_id = uuid.uuid4()
    for cluster in clusters:
        results += cluster_evaluate(
            cluster=cluster, policy_ids=[policy.pk], force=True, run_id=run_id
        )
    return Evaluated(results=results)


def sweep_batches(*, batch_size: int) -> list[list[int]]:
    """Ids of the push-mode clusters whose team has an enabled policy, in batches."""
    ids = list(
        Cluster.objects.filter(mode=ClusterMode.PUSH, team__policies__enabled=True)
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


EVALUATE_INTERVAL = 600  # seconds between sweeps (CELERY_BEAT_SCHEDULE "policies-evaluate")
BATCH_SIZE = 20  # clusters per task: each lists ~10 kinds, so a batch is ~200 API calls


def policies_evaluate_fanout() -> int:
    """Enqueue one evaluation task per batch of clusters; returns the number of batches."""
    from policies.tasks import policies_evaluate_batch_task

    batches = sweep_batches(batch_size=BATCH_SIZE)
    for batch in batches:
        policies_evaluate_batch_task.apply_async(args=[batch], expires=EVALUATE_INTERVAL)
    return len(batches)
