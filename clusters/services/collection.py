"""Inventory and health collection: probe clusters, apply hysteresis, record history.

Beat runs `clusters_collect_fanout` every interval. It sends one task per shard of
`KEELSON_COLLECT_SHARD_SIZE` push-mode clusters (10,000 clusters at 50 per shard: 200
messages per interval, not 10,000), and marks silent pull-mode agents in one query.
A shard probes its clusters concurrently in threads (network-bound), reading the API's
JSON without the client's model objects, then records the whole shard in one
transaction: the rows locked and updated with one statement each, transitions and
inventories in bulk, samples with COPY from plain tuples.

Periodic collection reads health (version, nodes, pods, warning events) every interval
and the full inventory (plus namespaces, workloads, storage) every
`KEELSON_COLLECT_INVENTORY_EVERY` intervals per cluster, spread over the intervals by
cluster id, or at once for a cluster without one or whose nodes or version changed.
A direct call (`manage.py clusters_collect`, registration, tests) reads everything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, Model
from django.utils import timezone
from kubernetes import client as k8s

from clusters.choices import ClusterMode, ClusterStatus
from clusters.health import Condition, Observation, next_status, observe_failure, observe_inventory
from clusters.models import (
    Cluster,
    ClusterInventory,
    ClusterTransition,
    HealthSample,
)
from clusters.realtime import cluster_snapshot, publish_cluster_on_commit
from clusters.services.credentials import cluster_api_clients
from clusters.services.history import SAMPLE_COLUMNS, SampleRow, samples_copy, samples_insert
from clusters.services.pullcleanup import pull_cleanups_expire
from core.celery import app, task_send
from kube.client import ClusterConnectError, classify
from kube.inventory import Inventory, collect, complete

logger = logging.getLogger(__name__)
# What a cluster seen for the first time gets at once (task name, queue).
# Sent by name: clusters.tasks imports this module (core.celery.task_send).
COLLECT_TASK = "clusters.tasks.clusters_collect_shard_task"
FIRST_SEEN_TASKS = (
    ("policies.tasks.policies_evaluate_batch_task", "policies"),
    ("costs.tasks.cost_compute_clusters_task", "costs"),
)
# What every collection that read a cluster's full inventory sends: the results of the
# policy engines the cluster runs (Kyverno, Gatekeeper) are read into the policy ledger.
AFTER_COLLECTION_TASK = ("policies.tasks.policies_external_collect_task", "policies")
# Clusters whose status changed: alerts re-checks them at once (alerts sits above).
STATUS_CHANGED_TASK = ("alerts.tasks.alerts_clusters_changed_task", "alerts")


@dataclass
class ProbeResult:
    cluster_id: int
    at: datetime
    inventory: Inventory | None = None
    error: ClusterConnectError | None = None


# Cluster row fields that the cheap (health-only) probe compares: a difference means the
# cluster changed shape, so its full inventory is read at once.
_SHAPE = (
    "kubernetes_version",
    "node_count",
    "capacity_cpu_millis",
    "capacity_memory_bytes",
    "capacity_gpu",
    "allocatable_cpu_millis",
    "allocatable_memory_bytes",
)


def _shape(inventory: Inventory) -> tuple[Any, ...]:
    return (
        inventory.kubernetes_version[:32],
        len(inventory.nodes),
        inventory.total("capacity", "cpu_millis"),
        inventory.total("capacity", "memory_bytes"),
        inventory.total("capacity", "gpu"),
        inventory.total("allocatable", "cpu_millis"),
        inventory.total("allocatable", "memory_bytes"),
    )


def cluster_probe_remote(*, cluster: Cluster, api: k8s.ApiClient, full: bool = True) -> ProbeResult:
    """Read the cluster through its API server: everything, or (`full=False`) health only
    unless the cluster changed shape since its row was written. Network only (no database
    access), so shards run it in threads."""
    at = timezone.now()
    server = cluster.api_server_url
    try:
        inventory = collect(api, server, full=full)
        if not inventory.full and _shape(inventory) != tuple(getattr(cluster, f) for f in _SHAPE):
            complete(api, inventory, server)
        return ProbeResult(cluster.pk, at, inventory=inventory)
    except ClusterConnectError as error:
        return ProbeResult(cluster.pk, at, error=error)
    except Exception as error:  # anything else still counts as a failed probe
        logger.warning("probe of %s failed unexpectedly", cluster.name, exc_info=True)
        return ProbeResult(cluster.pk, at, error=classify(error, server))


def _apply_inventory(cluster: Cluster, inventory: Inventory, at: datetime) -> None:
    (
        cluster.kubernetes_version,
        cluster.node_count,
        cluster.capacity_cpu_millis,
        cluster.capacity_memory_bytes,
        cluster.capacity_gpu,
        cluster.allocatable_cpu_millis,
        cluster.allocatable_memory_bytes,
    ) = _shape(inventory)
    cluster.nodes_ready = inventory.nodes_ready
    cluster.capacity_pods = inventory.total("capacity", "pods")
    cluster.allocatable_gpu = inventory.total("allocatable", "gpu")
    cluster.allocatable_pods = inventory.total("allocatable", "pods")
    cluster.requested_cpu_millis = inventory.requested_cpu_millis
    cluster.requested_memory_bytes = inventory.requested_memory_bytes
    cluster.api_latency_ms = inventory.api_latency_ms
    cluster.last_seen_at = at


def _public(cluster: Cluster) -> dict[str, Any]:
    """What browsers see of a cluster, less the time it was last seen (that changes with
    every probe: publishing it would push every cluster to every browser every interval)."""
    snapshot = cluster_snapshot(cluster)
    del snapshot["last_seen_at"]
    return snapshot


@dataclass
class _Applied:
    sample: SampleRow
    transition: ClusterTransition | None
    first_seen: bool
    changed: bool  # the public snapshot changed: browsers are told


def _apply(
    cluster: Cluster, at: datetime, inventory: Inventory | None, observation: Observation
) -> _Applied:
    """One observation applied to the (locked) cluster row in memory, with hysteresis."""
    before = _public(cluster)
    previous = cluster.status
    verdict = next_status(
        current=previous,
        pending_status=cluster.pending_status,
        pending_count=cluster.pending_count,
        observed=observation.status,
    )
    if inventory is not None:
        _apply_inventory(cluster, inventory, at)
    cluster.last_probe_at = at
    cluster.conditions = [condition.as_json() for condition in observation.conditions]
    cluster.pending_status, cluster.pending_count = verdict.pending_status, verdict.pending_count
    transition = None
    if verdict.changed_from(previous):
        cluster.status = verdict.status
        cluster.status_changed_at = at
        transition = ClusterTransition(
            cluster_id=cluster.pk,
            at=at,
            from_status=previous,
            to_status=verdict.status,
            reason=observation.reason[:64],
            message=observation.message[:500],
        )
    if verdict.status == observation.status:
        cluster.status_reason = observation.reason[:64]
        cluster.status_message = observation.message[:500]
    pods = inventory.pods_by_phase if inventory else {}
    sample = (
        cluster.pk,
        at,
        cluster.status,
        inventory.api_latency_ms if inventory else None,
        len(inventory.nodes) if inventory else 0,
        inventory.nodes_ready if inventory else 0,
        pods.get("Running", 0),
        pods.get("Pending", 0),
        pods.get("Failed", 0) + (inventory.pods_crashlooping if inventory else 0),
        inventory.requested_cpu_millis if inventory else 0,
        inventory.requested_memory_bytes if inventory else 0,
        inventory.warning_events if inventory else 0,
    )
    first_seen = transition is not None and (
        previous == ClusterStatus.UNKNOWN
        and verdict.status in (ClusterStatus.READY, ClusterStatus.DEGRADED)
    )
    return _Applied(sample, transition, first_seen, _public(cluster) != before)


def _after_commit(applied: Iterable[tuple[int, _Applied]]) -> None:
    """Tell browsers about changed clusters; evaluate clusters seen for the first time;
    have alerts look at clusters whose status changed."""
    first_seen, transitioned = [], []
    for cluster_id, outcome in applied:
        if outcome.changed:
            publish_cluster_on_commit(cluster_id)
        if outcome.first_seen:
            first_seen.append(cluster_id)
        if outcome.transition is not None:
            transitioned.append(cluster_id)
    if first_seen:
        _evaluate_policies_soon(first_seen)
    if transitioned:
        status_changed_soon(transitioned)


@transaction.atomic
def cluster_record_observation(
    *, cluster_id: int, at: datetime, inventory: Inventory | None, observation: Observation
) -> HealthSample | None:
    """Apply one observation to the cluster row; the sample to store, or None if a newer
    observation was recorded meanwhile (a late result is dropped)."""
    cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
    if cluster is None or (cluster.last_probe_at is not None and cluster.last_probe_at > at):
        return None
    applied = _apply(cluster, at, inventory, observation)
    cluster.save()
    if inventory is not None and inventory.full:
        ClusterInventory.objects.update_or_create(
            cluster=cluster, defaults={"collected_at": at, "data": inventory.as_json()}
        )
    if applied.transition is not None:
        applied.transition.save()
    _after_commit([(cluster.pk, applied)])
    return HealthSample(**dict(zip(SAMPLE_COLUMNS, applied.sample, strict=True)))


def _evaluate_policies_soon(cluster_ids: list[int]) -> None:
    """Clusters seen for the first time get their compliance and this hour's cost now, not at
    the next sweep or cost interval. Sent by name: policies and cost sit above the registry."""

    def send() -> None:
        for task, queue in FIRST_SEEN_TASKS:
            try:
                app.send_task(task, args=[cluster_ids], queue=queue, routing_key=queue)
            except Exception:  # the broker is down: the periodic runs cover it
                logger.warning("could not queue %s for clusters %s", task, cluster_ids)

    transaction.on_commit(send)


def status_changed_soon(cluster_ids: list[int]) -> None:
    """After commit, ask alerts to re-check these clusters (sent by name: alerts sits
    above the registry). A lost message is covered by alerts' periodic pass."""

    def send() -> None:
        task, queue = STATUS_CHANGED_TASK
        try:
            app.send_task(task, args=[cluster_ids], queue=queue, routing_key=queue)
        except Exception:
            logger.warning("could not queue %s for clusters %s", task, cluster_ids)

    transaction.on_commit(send)


def _observe(result: ProbeResult) -> Observation:
    if result.inventory is not None:
        return observe_inventory(result.inventory)
    assert result.error is not None
    return observe_failure(result.error.code, result.error.message)


def record_probe(result: ProbeResult) -> HealthSample | None:
    return cluster_record_observation(
        cluster_id=result.cluster_id,
        at=result.at,
        inventory=result.inventory,
        observation=_observe(result),
    )


# Written by one UPDATE per shard; everything `_apply` may change.
_PROBE_FIELDS = (
    "status",
    "status_reason",
    "status_message",
    "status_changed_at",
    "pending_status",
    "pending_count",
    "conditions",
    *_SHAPE,
    "nodes_ready",
    "capacity_pods",
    "allocatable_gpu",
    "allocatable_pods",
    "requested_cpu_millis",
    "requested_memory_bytes",
    "api_latency_ms",
    "last_seen_at",
    "last_probe_at",
    "updated_at",
)


def rows_update(objects: list[Model], fields: Iterable[str]) -> int:
    """`UPDATE ... FROM (VALUES ...)`: many rows' fields in one statement (Django's
    bulk_update builds a CASE per field and row, several times slower to plan)."""
    if not objects:
        return 0
    meta = objects[0]._meta
    pk = meta.pk
    assert pk is not None
    columns = [cast("Field[Any, Any]", meta.get_field(name)) for name in fields]
    casts = ", ".join(f"%s::{f.db_type(connection)}" for f in (pk, *columns))
    values = ", ".join([f"({casts})"] * len(objects))
    # Only JSON needs adapting; psycopg2 passes numbers, text and aware datetimes as they are.
    adapt = [f.get_internal_type() == "JSONField" for f in columns]
    params: list[Any] = []
    for obj in objects:
        params.append(obj.pk)
        for field, json in zip(columns, adapt, strict=True):
            value = getattr(obj, field.attname)
            params.append(field.get_db_prep_save(value, connection) if json else value)
    quote = connection.ops.quote_name
    table, key = quote(meta.db_table), quote(str(pk.column))
    names = [quote(str(f.column)) for f in columns]
    sets = ", ".join(f"{name} = v.{name}" for name in names)
    names_sql = ", ".join([key, *names])
    # Identifiers come from the model's metadata; every value is a parameter.
    sql = f"UPDATE {table} AS t SET {sets} FROM (VALUES {values}) AS v ({names_sql}) WHERE t.{key} = v.{key}"  # noqa: E501, S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


@transaction.atomic
def _record_shard(results: list[ProbeResult]) -> list[SampleRow]:
    """Record a shard's probes in one transaction; the samples written."""
    by_id = {result.cluster_id: result for result in results}
    locked = (
        Cluster.objects.select_for_update()
        .filter(pk__in=by_id)
        .order_by("pk")
        .only("name", "last_probe_at", *(f for f in _PROBE_FIELDS if f != "conditions"))
    )
    now = timezone.now()
    updated: list[Model] = []
    applied: list[tuple[int, _Applied]] = []
    inventories = []
    for cluster in locked:
        result = by_id[cluster.pk]
        if cluster.last_probe_at is not None and cluster.last_probe_at > result.at:
            continue  # a newer observation was recorded meanwhile
        outcome = _apply(cluster, result.at, result.inventory, _observe(result))
        cluster.updated_at = now
        updated.append(cluster)
        applied.append((cluster.pk, outcome))
        if result.inventory is not None and result.inventory.full:
            inventories.append(
                ClusterInventory(
                    cluster_id=cluster.pk, collected_at=result.at, data=result.inventory.as_json()
                )
            )
    rows_update(updated, _PROBE_FIELDS)
    transitions = [a.transition for _, a in applied if a.transition is not None]
    ClusterTransition.objects.bulk_create(transitions)
    ClusterInventory.objects.bulk_create(
        inventories,
        update_conflicts=True,
        unique_fields=["cluster"],
        update_fields=["collected_at", "data"],
    )
    samples = [a.sample for _, a in applied]
    samples_copy(samples)
    _after_commit(applied)
    return samples


def _inventory_due(cluster_ids: list[int], now: datetime) -> set[int]:
    """Clusters whose full inventory this scheduled pass reads: each in its own slot of
    every Nth interval, and any without an inventory or whose slot was missed."""
    every = settings.KEELSON_COLLECT_INVENTORY_EVERY
    if every <= 1:
        return set(cluster_ids)
    interval = settings.KEELSON_COLLECT_INTERVAL
    slot = int(now.timestamp()) // interval
    stale = now - timedelta(seconds=interval * (every + 1))
    collected = dict(
        ClusterInventory.objects.filter(cluster_id__in=cluster_ids).values_list(
            "cluster_id", "collected_at"
        )
    )
    return {
        pk
        for pk in cluster_ids
        if (slot + pk) % every == 0 or pk not in collected or collected[pk] < stale
    }


def _api_clients(
    clusters: list[Cluster],
) -> tuple[list[tuple[Cluster, k8s.ApiClient]], list[ProbeResult]]:
    """The cached client of each cluster; a failure to build one is that cluster's probe
    result."""
    targets, failed = cluster_api_clients(clusters=clusters)
    return targets, [ProbeResult(c.pk, timezone.now(), error=error) for c, error in failed]


def clusters_collect(*, cluster_ids: list[int], scheduled: bool = False) -> dict[str, int]:
    """Probe a shard of push-mode clusters and record everything; returns counts by status.
    `scheduled` (the periodic task) reads full inventories only when due (module doc)."""
    clusters = list(
        Cluster.objects.filter(pk__in=cluster_ids, mode=ClusterMode.PUSH)
        .select_related("team")
        .defer("labels", "taints", "conditions", "description")
    )
    if not clusters:
        return {}
    # Credentials are read (and audited) here, in this thread: the probe threads then
    # touch only the network, never the database.
    targets, results = _api_clients(clusters)
    if targets:
        ids = [cluster.pk for cluster, _ in targets]
        due = _inventory_due(ids, timezone.now()) if scheduled else set(ids)
        workers = min(settings.KEELSON_COLLECT_THREADS, len(targets))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            results += pool.map(
                lambda t: cluster_probe_remote(cluster=t[0], api=t[1], full=t[0].pk in due),
                targets,
            )
    counts: dict[str, int] = {}
    for sample in _record_shard(results):
        counts[sample[2]] = counts.get(sample[2], 0) + 1
    _read_engines_soon([r.cluster_id for r in results if r.inventory and r.inventory.full])
    return counts


def _read_engines_soon(cluster_ids: list[int]) -> None:
    """Queue the reading of the clusters' policy engine results (sent by name: policies
    sit above the registry)."""
    if not cluster_ids:
        return
    task, queue = AFTER_COLLECTION_TASK
    # the next full inventory collection sends it again: a backlog need not keep it longer
    expires = settings.KEELSON_COLLECT_INTERVAL * settings.KEELSON_COLLECT_INVENTORY_EVERY

    def send() -> None:
        try:
            app.send_task(task, args=[cluster_ids], queue=queue, routing_key=queue, expires=expires)
        except Exception:  # the broker is down: the next collection sends it again
            logger.warning("could not queue %s for clusters %s", task, cluster_ids)

    transaction.on_commit(send)


def agents_mark_silent(*, now: datetime | None = None) -> int:
    """Pull-mode clusters whose agent missed its heartbeats become Unreachable (the
    silence itself is the hysteresis: N intervals without a word)."""
    now = now or timezone.now()
    silence = settings.KEELSON_AGENT_HEARTBEAT_INTERVAL * settings.KEELSON_AGENT_MISSED_HEARTBEATS
    cutoff = now - timedelta(seconds=silence)
    silent = list(
        Cluster.objects.filter(mode=ClusterMode.PULL, last_seen_at__lt=cutoff)
        .exclude(status=ClusterStatus.UNREACHABLE)
        .values_list("pk", flat=True)
    )
    message = f"The agent sent no heartbeat for over {silence} s."
    observation = Observation(
        ClusterStatus.UNREACHABLE,
        "AgentSilent",
        message,
        (Condition("AgentHeartbeat", False, "AgentSilent", message),),
    )
    samples = []
    for cluster_id in silent:
        with transaction.atomic():
            cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
            heard_since = cluster.last_seen_at is not None and cluster.last_seen_at >= cutoff
            if cluster.status == ClusterStatus.UNREACHABLE or heard_since:
                continue  # a heartbeat landed between the scan and the lock
            ClusterTransition.objects.create(
                cluster=cluster,
                at=now,
                from_status=cluster.status,
                to_status=ClusterStatus.UNREACHABLE,
                reason=observation.reason,
                message=message,
            )
            cluster.status, cluster.status_changed_at = ClusterStatus.UNREACHABLE, now
            cluster.status_reason, cluster.status_message = observation.reason, message
            cluster.pending_status, cluster.pending_count = "", 0
            cluster.conditions = [c.as_json() for c in observation.conditions]
            cluster.last_probe_at = now
            cluster.save()
            publish_cluster_on_commit(cluster_id)
            status_changed_soon([cluster_id])
        samples.append(HealthSample(cluster_id=cluster_id, at=now, status=cluster.status))
    samples_insert(samples)
    return len(samples)


def clusters_collect_fanout() -> int:
    """Enqueue one collection task per shard; returns the number of shards sent."""
    agents_mark_silent()
    pull_cleanups_expire()
    ids = list(
        Cluster.objects.filter(mode=ClusterMode.PUSH).order_by("pk").values_list("pk", flat=True)
    )
    size = settings.KEELSON_COLLECT_SHARD_SIZE
    shards = [ids[start : start + size] for start in range(0, len(ids), size)]
    for shard in shards:
        task_send(COLLECT_TASK, args=[shard], expires=settings.KEELSON_COLLECT_INTERVAL)
    return len(shards)


def agent_report(*, cluster: Cluster, inventory: Inventory) -> HealthSample | None:
    """A pull-mode agent's heartbeat with its inventory: recorded like a probe."""
    sample = record_probe(ProbeResult(cluster.pk, timezone.now(), inventory=inventory))
    if sample is not None:
        sample.save()
    return sample
