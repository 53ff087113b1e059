"""Evaluating clusters under their locks: what each needs judged, reading them in
threads, judging each read as it arrives and storing the outcomes as they pile up."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings

from clusters.choices import ClusterMode
from clusters.models import Cluster
from clusters.services.credentials import cluster_api_clients
from kube.client import ClusterConnectError
from kube.reads import Concurrency, ReadPool, adaptive_reads
from policies.engine import share
from policies.kube import prefetch_discovery
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation.locks import BATCH_LOCK_WAIT, cluster_locks
from policies.services.evaluation.outcomes import Outcome, judged, outcome
from policies.services.evaluation.reading import (
    Read,
    cluster_reader,
    discovery_key,
    plans_for,
    read_cluster,
)
from policies.services.evaluation.store import Last, inventory_stamps, last_results, store
from policies.services.evaluation.targeting import applicable
from policies.services.evaluation.versions import pss_pins

logger = logging.getLogger(__name__)

FLUSH_ROWS = 250
# What this process has learned of its fleet's read and judging times, carried from one
# batch to the next so a batch of distant clusters does not start at two reads in flight.
_concurrency = Concurrency(limit=64)
_read_pool = ReadPool("policy-read")


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
    outcomes = _evaluate(
        [cluster], policy_ids, force, run_id or uuid.uuid4(), lock_wait, failures=[], copy=False
    )
    return [row.model() for row in outcomes]


def clusters_evaluate(
    *, cluster_ids: list[int], policy_ids: list[int] | None = None, force: bool = False
) -> dict[str, int]:
    """One batch of the sweep, evaluated together (package doc); one failing cluster never
    stops the others. Returns counts by status."""
    clusters = list(Cluster.objects.filter(pk__in=cluster_ids).select_related("team"))
    failures: list[Cluster] = []
    rows = _evaluate(
        clusters, policy_ids, force, uuid.uuid4(), BATCH_LOCK_WAIT, failures=failures, copy=True
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    if failures:
        counts["failed_clusters"] = len(failures)
    return counts


def _evaluate(
    clusters: list[Cluster],
    policy_ids: list[int] | None,
    force: bool,
    run_id: uuid.UUID,
    lock_wait: float,
    *,
    failures: list[Cluster],
    copy: bool,
) -> list[Outcome]:
    """Evaluate `clusters` under their locks. `copy` stores with COPY (a sweep: faster,
    but the new rows' primary keys are not known) instead of INSERT."""
    by_id = {c.pk: c for c in clusters}
    results: list[Outcome] = []
    with cluster_locks(list(by_id), wait=lock_wait) as locked:
        for group in locked:
            results += _evaluate_locked(
                [by_id[pk] for pk in group], policy_ids, force, run_id, failures, copy
            )
    return results


def _evaluate_locked(
    clusters: list[Cluster],
    policy_ids: list[int] | None,
    force: bool,
    run_id: uuid.UUID,
    failures: list[Cluster],
    copy: bool,
) -> list[Outcome]:
    """Decide what each cluster needs judged, read the clusters in threads (network
    only), judge each read as it arrives, and store the results every FLUSH_ROWS (work
    done survives a worker killed mid-batch; a redelivered batch skips it)."""
    ids = [c.pk for c in clusters]
    todo_by_cluster = applicable(clusters, policy_ids)
    stamps = inventory_stamps(ids)
    last: dict[tuple[int, int], Last] = {}
    if not force:
        every = sorted({p.pk for policies in todo_by_cluster.values() for p in policies})
        last = last_results(ids, every) if every else {}

        def judged_already(policy: Policy, pk: int) -> bool:
            found = last.get((policy.pk, pk))
            return bool(
                stamps.get(pk)
                and found is not None
                and (found.generation, found.stamp) == (policy.generation, stamps[pk])
            )

        todo_by_cluster = {
            pk: [p for p in policies if not judged_already(p, pk)]
            for pk, policies in todo_by_cluster.items()
        }
    todo = [c for c in clusters if todo_by_cluster[c.pk]]
    pins = pss_pins(todo) if todo else {}
    plans = plans_for(p for c in todo for p in todo_by_cluster[c.pk])
    sharing = share(rule for plan in plans.values() for rule in plan.rules)
    results: list[Outcome] = []
    stored = 0

    def errors(cluster: Cluster, message: str) -> None:
        stamp = stamps.get(cluster.pk, "")
        results.extend(
            outcome(p, cluster, run_id, stamp, force, error=message)
            for p in todo_by_cluster[cluster.pk]
        )

    # A pull cluster's agent evaluates it and reports (policies.services.agent).
    push = [c for c in todo if c.mode == ClusterMode.PUSH]
    readable, unbuilt = cluster_api_clients(clusters=push)
    for cluster, error in unbuilt:
        errors(cluster, error.message)

    def read(target: tuple[Cluster, Any]) -> Read | ClusterConnectError | Exception:
        cluster, api = target
        try:
            return read_cluster(
                cluster_reader(cluster, api), cluster, todo_by_cluster[cluster.pk], plans, sharing
            )
        except ClusterConnectError as error:
            return error
        except Exception as error:  # one cluster's failure never stops the batch
            return error

    prefetch_discovery([discovery_key(cluster) for cluster, _ in readable])
    limit = settings.KEELSON_POLICY_READ_THREADS
    if _concurrency.limit != limit:
        _concurrency.limit = limit
    for (cluster, _), found in adaptive_reads(
        readable, read, limit=limit, concurrency=_concurrency, pool=_read_pool.get(limit)
    ):
        if isinstance(found, ClusterConnectError):
            errors(cluster, found.message)
        elif isinstance(found, Exception):
            logger.error(
                "policy evaluation of cluster %s failed: %s",
                cluster.name,
                type(found).__name__,
                exc_info=found,
            )
            failures.append(cluster)
        else:
            try:
                results += judged(
                    cluster,
                    todo_by_cluster[cluster.pk],
                    plans,
                    found,
                    run_id,
                    stamps,
                    force,
                    pins.get(cluster.pk),
                )
            except Exception:
                logger.exception("policy evaluation of cluster %s failed", cluster.name)
                failures.append(cluster)
        if len(results) - stored >= FLUSH_ROWS:
            store(results[stored:], copy, last)
            stored = len(results)
    store(results[stored:], copy, last)
    return results
