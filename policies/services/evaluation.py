"""Evaluating policies on clusters and storing the results (full history).

For one cluster: find the enabled policies that target it, drop those already judged at
the same policy generation and inventory stamp (unless forced), list every kind the rest
need once through discovery, judge each policy over that snapshot, and store one result
per policy in one transaction. A cluster that cannot be read gets an `error` result per
policy saying why; one object a rule cannot judge is recorded against that object.

A sweep batch does this for its clusters together: the teams' policies, the inventory
stamps and the newest results are read once for the batch, the clusters are read in
threads (network, TLS and decoding; as many reads in flight as keep the judging busy, up
to `KEELSON_POLICY_READ_THREADS`: `kube.reads`) while the calling thread judges
each read as it arrives, and the results are stored with COPY every FLUSH_ROWS.

The inventory stamp is the time of the cluster's last inventory collection: a new
collection may have seen anything change, so it re-opens every policy for that cluster,
while a policy edit (new generation) re-opens only that policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from applications.models import ClusterWork
from clusters.choices import ClusterMode
from clusters.labels import LabelSelector
from clusters.models import Cluster, ClusterInventory
from clusters.services.credentials import cluster_api_clients
from clusters.services.lifecycle import cluster_set_clusters
from core.db.copy import copy_lines, copy_text, copy_value
from kube.client import ClusterConnectError
from kube.reads import Concurrency, ReadPool, adaptive_reads
from policies import cel, celcost
from policies.choices import Mode, ResultStatus
from policies.engine import Sharing, Snapshot, judge, kinds_needed, share
from policies.kube import ClusterReader, prefetch_discovery
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


@dataclass(frozen=True)
class Plan:
    """A policy's rules and the kinds they need, worked out once per batch rather than
    once per cluster."""

    rules: list[Any]
    kinds: list[tuple[str, str]]


def plans_for(policies: Iterable[Policy]) -> dict[int, Plan]:
    """Plans for `policies` (rules prefetched), by policy id."""
    found: dict[int, Plan] = {}
    for policy in policies:
        if policy.pk not in found:
            rules = list(policy.rules.all())
            kinds = list(dict.fromkeys(k for rule in rules for k in kinds_needed(rule)))
            found[policy.pk] = Plan(rules, kinds)
    return found


def read_cluster(
    reader: ClusterReader,
    cluster: Cluster,
    policies: list[Policy],
    plans: dict[int, Plan] | None = None,
    sharing: Sharing | None = None,
) -> Read:
    """List each kind the policies need once. A kind that fails is remembered so only
    the policies needing it get an error. Runs in worker threads: no database access
    (rules are prefetched)."""
    plans = plans or plans_for(policies)
    if sharing is None:
        sharing = share(rule for p in policies for rule in plans[p.pk].rules)
    kinds = list(dict.fromkeys(kind for p in policies for kind in plans[p.pk].kinds))
    objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
    namespaced: dict[tuple[str, str], bool] = {}
    failed: dict[tuple[str, str], str] = {}
    try:
        served = reader.resolve(kinds)
    except ClusterConnectError as error:
        served, failed = {}, dict.fromkeys(kinds, error.message)
    for key, resource in served.items():
        try:
            namespaced[key] = bool(resource is not None and resource.namespaced)
            objects[key] = reader.list(*key)
        except ClusterConnectError as error:
            failed[key] = error.message
    facts = cluster_facts(cluster, _version(cluster, reader))
    return Read(Snapshot(objects, namespaced, facts, sharing=sharing), failed)


def _version(cluster: Cluster, reader: ClusterReader) -> dict[str, Any]:
    """The version collection last recorded (`v1.29.3`), else the cluster's answer."""
    match = re.match(r"v?(\d+)\.(\d+)", cluster.kubernetes_version or "")
    if match:
        major, minor = match.groups()
        return {"major": major, "minor": minor, "gitVersion": cluster.kubernetes_version}
    return reader.version()


def cluster_reader(cluster: Cluster, api: Any) -> ClusterReader:
    """A reader whose discovery is shared per cluster and server version."""
    return ClusterReader(api, cache_key=_discovery_key(cluster))


def _discovery_key(cluster: Cluster) -> str:
    return f"{cluster.pk}:{cluster.kubernetes_version}"


class Last(NamedTuple):
    """The newest stored result of a (policy, cluster) pair, without its lists (a tuple: a
    batch reads one per pair, and a frozen dataclass cost more to build than the query)."""

    id: int
    generation: int
    stamp: str
    digest: str
    evaluated_at: Any
    run_id: uuid.UUID
    forced: bool


def _last_results(cluster_ids: list[int], policy_ids: list[int]) -> dict[tuple[int, int], Last]:
    """The newest result of each (policy, cluster) pair, in one query (the
    (policy, cluster, -evaluated_at) index serves it)."""
    rows = (
        PolicyEvaluation.objects.filter(cluster_id__in=cluster_ids, policy_id__in=policy_ids)
        .order_by("policy_id", "cluster_id", "-evaluated_at", "-id")
        .distinct("policy_id", "cluster_id")
        .values_list(
            "policy_id",
            "cluster_id",
            "id",
            "policy_generation",
            "inventory_stamp",
            "digest",
            "evaluated_at",
            "run_id",
            "forced",
        )
    )
    return {(row[0], row[1]): Last(*row[2:]) for row in rows}


def _stamps(cluster_ids: list[int]) -> dict[int, str]:
    rows = ClusterInventory.objects.filter(cluster_id__in=cluster_ids).values_list(
        "cluster_id", "collected_at"
    )
    return {pk: collected.isoformat() for pk, collected in rows if collected}


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
    return _applicable([cluster], policy_ids)[cluster.pk]


def _applicable(clusters: list[Cluster], policy_ids: list[int] | None) -> dict[int, list[Policy]]:
    """The enabled policies targeting each cluster, loaded once for all of them: one query
    for the teams' policies (with rules and sets), one per policy that narrows its
    targets (placement, cluster sets or selector)."""
    query = Policy.objects.filter(
        team_id__in={c.team_id for c in clusters}, enabled=True
    ).prefetch_related("rules", "cluster_sets")
    if policy_ids is not None:
        query = query.filter(pk__in=policy_ids)
    ids = [c.pk for c in clusters]
    by_team: dict[int, list[tuple[Policy, set[int] | None]]] = {}
    for policy in query.order_by("pk"):
        narrowed = bool(policy.placement or policy.cluster_selector or policy.cluster_sets.all())
        targets = (
            set(policy_clusters(policy=policy).filter(pk__in=ids).values_list("pk", flat=True))
            if narrowed
            else None
        )
        by_team.setdefault(policy.team_id, []).append((policy, targets))
    return {
        c.pk: [p for p, targets in by_team.get(c.team_id, []) if targets is None or c.pk in targets]
        for c in clusters
    }


# Namespace of the advisory locks that keep one evaluation per cluster at a time.
_LOCK_CLASS = 0x706F6C  # "pol"
# How long a batch waits for a cluster another session holds (a dying one, typically)
# before leaving the cluster to the next sweep.
BATCH_LOCK_WAIT = 15.0


def _try_locks(cluster_ids: list[int]) -> list[int]:
    """Session-level advisory locks (not held across a transaction: evaluation talks to
    clusters for a while) on every cluster free now, in one statement; returns those."""
    if not cluster_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM unnest(%s::int[]) AS id WHERE pg_try_advisory_lock(%s, id)",
            [cluster_ids, _LOCK_CLASS],
        )
        return [row[0] for row in cursor.fetchall()]


def _unlock(cluster_ids: list[int]) -> None:
    if cluster_ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, id) FROM unnest(%s::int[]) AS id",
                [_LOCK_CLASS, cluster_ids],
            )


@contextmanager
def _cluster_locks(cluster_ids: list[int], *, wait: float = 0.0) -> Iterator[Iterator[list[int]]]:
    """Yields an iterator of groups of locked cluster ids: those free now, then, for up to
    `wait` seconds, those another worker held and let go (a worker killed
    mid-evaluation frees its locks once PostgreSQL ends its session, which can take a
    moment). Clusters still held after that are left to the next sweep."""
    held: list[int] = []

    def groups() -> Iterator[list[int]]:
        pending, deadline = list(cluster_ids), None
        while pending:
            got = _try_locks(pending)
            held.extend(got)
            if got:
                yield got
            taken = set(got)
            pending = [pk for pk in pending if pk not in taken]
            if deadline is None:  # the wait starts once the free clusters are done
                deadline = time.monotonic() + wait
            if not pending or time.monotonic() >= deadline:
                return
            time.sleep(0.5)

    try:
        yield groups()
    finally:
        _unlock(held)


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
    return [outcome.model() for outcome in outcomes]


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
    with _cluster_locks(list(by_id), wait=lock_wait) as locked:
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
    applicable = _applicable(clusters, policy_ids)
    stamps = _stamps(ids)
    last: dict[tuple[int, int], Last] = {}
    if not force:
        every = sorted({p.pk for policies in applicable.values() for p in policies})
        last = _last_results(ids, every) if every else {}

        def judged_already(policy: Policy, pk: int) -> bool:
            found = last.get((policy.pk, pk))
            return bool(
                stamps.get(pk)
                and found is not None
                and (found.generation, found.stamp) == (policy.generation, stamps[pk])
            )

        applicable = {
            pk: [p for p in policies if not judged_already(p, pk)]
            for pk, policies in applicable.items()
        }
    todo = [c for c in clusters if applicable[c.pk]]
    plans = plans_for(p for c in todo for p in applicable[c.pk])
    sharing = share(rule for plan in plans.values() for rule in plan.rules)
    results: list[Outcome] = []
    stored = 0

    def errors(cluster: Cluster, message: str) -> None:
        stamp = stamps.get(cluster.pk, "")
        results.extend(
            _row(p, cluster, run_id, stamp, force, error=message) for p in applicable[cluster.pk]
        )

    push = [c for c in todo if c.mode == ClusterMode.PUSH]
    for cluster in todo:
        if cluster.mode != ClusterMode.PUSH:
            errors(cluster, "Pull-mode clusters are not evaluated from the hub yet.")
    readable, unbuilt = cluster_api_clients(clusters=push)
    for cluster, error in unbuilt:
        errors(cluster, error.message)

    def read(target: tuple[Cluster, Any]) -> Read | ClusterConnectError | Exception:
        cluster, api = target
        try:
            return read_cluster(
                cluster_reader(cluster, api), cluster, applicable[cluster.pk], plans, sharing
            )
        except ClusterConnectError as error:
            return error
        except Exception as error:  # one cluster's failure never stops the batch
            return error

    prefetch_discovery([_discovery_key(cluster) for cluster, _ in readable])
    limit = settings.KEELSON_POLICY_READ_THREADS
    if _concurrency.limit != limit:
        _concurrency.limit = limit
    for (cluster, _), outcome in adaptive_reads(
        readable, read, limit=limit, concurrency=_concurrency, pool=_read_pool.get(limit)
    ):
        if isinstance(outcome, ClusterConnectError):
            errors(cluster, outcome.message)
        elif isinstance(outcome, Exception):
            logger.error(
                "policy evaluation of cluster %s failed: %s",
                cluster.name,
                type(outcome).__name__,
                exc_info=outcome,
            )
            failures.append(cluster)
        else:
            try:
                results += _judged(
                    cluster, applicable[cluster.pk], plans, outcome, run_id, stamps, force
                )
            except Exception:
                logger.exception("policy evaluation of cluster %s failed", cluster.name)
                failures.append(cluster)
        if len(results) - stored >= FLUSH_ROWS:
            _store(results[stored:], copy, last)
            stored = len(results)
    _store(results[stored:], copy, last)
    return results


# What this process has learned of its fleet's read and judging times, carried from one
# batch to the next so a batch of distant clusters does not start at two reads in flight.
_concurrency = Concurrency(limit=64)
_read_pool = ReadPool("policy-read")

FLUSH_ROWS = 250
EVALUATION_COLUMNS = (
    "policy_id",
    "cluster_id",
    "cluster_name",
    "run_id",
    "status",
    "message",
    "violations",
    "errors",
    "violations_total",
    "errors_total",
    "objects_checked",
    "policy_generation",
    "inventory_stamp",
    "forced",
    "evaluated_at",
    "checked_at",
    "digest",
)


_KEYS = ("policy_id", "cluster_id")


@dataclass(slots=True)
class Outcome:
    """One (policy, cluster) result on its way to the table: a plain record, since a sweep
    makes hundreds of thousands and a model instance cost more than the judging."""

    policy: Policy
    cluster: Cluster
    run_id: uuid.UUID
    policy_generation: int
    inventory_stamp: str
    forced: bool
    evaluated_at: datetime
    checked_at: datetime
    status: str = ""
    message: str = ""
    violations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    violations_total: int = 0
    errors_total: int = 0
    objects_checked: int = 0
    digest: str = ""
    pk: int | None = None  # the stored row holding it, once known

    @property
    def policy_id(self) -> int:
        return int(self.policy.pk)

    @property
    def cluster_id(self) -> int:
        return int(self.cluster.pk)

    @property
    def cluster_name(self) -> str:
        return str(self.cluster.name)

    def values(self) -> list[Any]:
        return [getattr(self, column) for column in EVALUATION_COLUMNS]

    def model(self) -> PolicyEvaluation:
        row = PolicyEvaluation(
            policy=self.policy,
            cluster=self.cluster,
            **{c: getattr(self, c) for c in EVALUATION_COLUMNS if c not in _KEYS},
        )
        if self.pk is not None:
            row.pk = self.pk
            row._state.adding = False
            row._state.db = "default"
        return row


def _store(rows: list[Outcome], copy: bool, last: dict[tuple[int, int], Last]) -> None:
    """Insert the rows whose outcome is new; for an outcome the newest stored row already
    holds, move that row's `checked_at` and inventory stamp instead (the row in `rows`
    then stands for the stored one). `last` is empty for forced evaluations."""
    confirmed: list[tuple[int, str, Any]] = []
    new: list[Outcome] = []
    for row in rows:
        found = last.get((row.policy_id, row.cluster_id))
        if found is not None and found.digest == row.digest:
            confirmed.append((found.id, row.inventory_stamp, row.checked_at))
            row.pk, row.evaluated_at = found.id, found.evaluated_at
            row.run_id, row.forced = found.run_id, found.forced
        else:
            new.append(row)
    with transaction.atomic():
        if copy:
            copy_lines(PolicyEvaluation, EVALUATION_COLUMNS, [_copy_line(row) for row in new])
        else:
            saved = PolicyEvaluation.objects.bulk_create([r.model() for r in new], batch_size=500)
            for row, model in zip(new, saved, strict=True):
                row.pk = model.pk
        if confirmed:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE policies_policyevaluation AS e SET inventory_stamp = v.stamp,"
                    " checked_at = v.checked FROM unnest(%s::bigint[], %s::text[],"
                    " %s::timestamptz[]) AS v(id, stamp, checked) WHERE e.id = v.id",
                    [list(c) for c in zip(*confirmed, strict=True)],
                )


def _copy_line(row: Outcome) -> str:
    """`row.values()` in COPY's text format (what `copy_rows` makes of them), written out
    for this table: a first sweep stores a row per pair, and formatting them value by
    value was a sixth of its CPU."""
    evaluated = row.evaluated_at.isoformat()
    checked = evaluated if row.checked_at is row.evaluated_at else row.checked_at.isoformat()
    violations = copy_value(row.violations) if row.violations else "[]"
    errors = copy_value(row.errors) if row.errors else "[]"
    return (
        f"{row.policy.pk}\t{row.cluster.pk}\t{copy_text(row.cluster.name)}\t{row.run_id}\t{copy_text(row.status)}\t"
        f"{copy_text(row.message)}\t{violations}\t{errors}\t{row.violations_total}\t"
        f"{row.errors_total}\t{row.objects_checked}\t{row.policy_generation}\t"
        f"{copy_text(row.inventory_stamp)}\t{'t' if row.forced else 'f'}\t{evaluated}\t"
        f"{checked}\t{copy_text(row.digest)}"
    )


def _judged(
    cluster: Cluster,
    policies: list[Policy],
    plans: dict[int, Plan],
    read: Read,
    run_id: uuid.UUID,
    stamps: dict[int, str],
    force: bool,
) -> list[Outcome]:
    stamp = stamps.get(cluster.pk, "")
    rows: list[Outcome] = []
    for policy in policies:
        plan = plans[policy.pk]
        broken = sorted({read.failed[k] for k in plan.kinds if k in read.failed})
        if broken:
            rows.append(_row(policy, cluster, run_id, stamp, force, error=broken[0]))
            continue
        judgement = judge(plan.rules, read.snapshot)
        rows.append(_row(policy, cluster, run_id, stamp, force, judgement=judgement))
    return rows


def _row(
    policy: Policy,
    cluster: Cluster,
    run_id: uuid.UUID,
    stamp: str,
    force: bool,
    *,
    error: str = "",
    judgement: Any = None,
) -> Outcome:
    now = timezone.now()
    row = Outcome(policy, cluster, run_id, policy.generation, stamp, force, now, now)
    if judgement is None:
        row.status = ResultStatus.ERROR
        row.message = f"The cluster could not be read: {error}"[:1000]
        row.digest = _digest(row)
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
    row.digest = _digest(row)
    return row


def _digest(row: Outcome) -> str:
    """What makes two outcomes the same: everything stored but the times, the run and the
    inventory stamp."""
    if not row.violations and not row.errors:  # most outcomes: json.dumps's text, by hand
        text = (
            f"[{row.policy_generation}, {_quoted(row.status)}, {_quoted(row.message)}, "
            f"{row.objects_checked}, {row.violations_total}, {row.errors_total}, [], []]"
        )
    else:
        outcome = [
            row.policy_generation,
            row.status,
            row.message,
            row.objects_checked,
            row.violations_total,
            row.errors_total,
            row.violations,
            row.errors,
        ]
        text = json.dumps(outcome, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


_quoted = json.encoder.encode_basestring_ascii


def clusters_evaluate(
    *, cluster_ids: list[int], policy_ids: list[int] | None = None, force: bool = False
) -> dict[str, int]:
    """One batch of the sweep, evaluated together (module doc); one failing cluster never
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
    with cel.budget(celcost.REQUEST_BUDGET):  # a web request: bounded CEL work
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
# Clusters per task. Each lists ~10 kinds (~500 API calls a batch); a batch's own queries
# (policies, stamps, newest results, credentials, enforcement) cost about 25 ms of worker
# CPU whatever its size, 1.2 ms a cluster at 20, 0.75 ms at 50.
BATCH_SIZE = 50


def policies_evaluate_fanout() -> int:
    """Enqueue one evaluation task per batch of clusters; returns the number of batches."""
    from policies.tasks import policies_evaluate_batch_task

    batches = sweep_batches(batch_size=BATCH_SIZE)
    for batch in batches:
        policies_evaluate_batch_task.apply_async(args=[batch], expires=EVALUATE_INTERVAL)
    return len(batches)
