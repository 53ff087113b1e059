"""Inventory and health collection: probe clusters, apply hysteresis, record history.

Beat runs `clusters_collect_fanout` every interval. It sends one task per shard of
`KEELSON_COLLECT_SHARD_SIZE` push-mode clusters (10,000 clusters at 50 per shard: 200
messages per interval, not 10,000), and marks silent pull-mode agents in one query.
A shard probes its clusters concurrently in threads (network-bound), then writes each
cluster's row in its own short transaction and all samples in one multi-row insert.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kubernetes import client as k8s

from clusters.choices import ClusterMode, ClusterStatus
from clusters.health import Condition, Observation, next_status, observe_failure, observe_inventory
from clusters.kube.client import ClusterConnectError, classify
from clusters.kube.inventory import Inventory, collect
from clusters.models import Cluster, ClusterInventory, ClusterTransition, HealthSample
from clusters.realtime import publish_cluster_on_commit
from clusters.services.credentials import cluster_api_client
from clusters.services.history import samples_insert

logger = logging.getLogger(__name__)


@dataclass
class ProbeResult:
    cluster_id: int
    at: datetime
    inventory: Inventory | None = None
    error: ClusterConnectError | None = None


def cluster_probe_remote(*, cluster: Cluster, api: k8s.ApiClient) -> ProbeResult:
    """Read the cluster through its API server. Network only (no database access), so
    shards run it in threads."""
    at = timezone.now()
    try:
        return ProbeResult(cluster.pk, at, inventory=collect(api, cluster.api_server_url))
    except ClusterConnectError as error:
        return ProbeResult(cluster.pk, at, error=error)
    except Exception as error:  # anything else still counts as a failed probe
        logger.warning("probe of %s failed unexpectedly", cluster.name, exc_info=True)
        return ProbeResult(cluster.pk, at, error=classify(error, cluster.api_server_url))


def _apply_inventory(cluster: Cluster, inventory: Inventory, at: datetime) -> None:
    cluster.kubernetes_version = inventory.kubernetes_version[:32]
    cluster.node_count = len(inventory.nodes)
    cluster.nodes_ready = inventory.nodes_ready
    cluster.capacity_cpu_millis = inventory.total("capacity", "cpu_millis")
    cluster.capacity_memory_bytes = inventory.total("capacity", "memory_bytes")
    cluster.capacity_gpu = inventory.total("capacity", "gpu")
    cluster.capacity_pods = inventory.total("capacity", "pods")
    cluster.allocatable_cpu_millis = inventory.total("allocatable", "cpu_millis")
    cluster.allocatable_memory_bytes = inventory.total("allocatable", "memory_bytes")
    cluster.allocatable_gpu = inventory.total("allocatable", "gpu")
    cluster.allocatable_pods = inventory.total("allocatable", "pods")
    cluster.requested_cpu_millis = inventory.requested_cpu_millis
    cluster.requested_memory_bytes = inventory.requested_memory_bytes
    cluster.api_latency_ms = inventory.api_latency_ms
    cluster.last_seen_at = at
    ClusterInventory.objects.update_or_create(
        cluster=cluster, defaults={"collected_at": at, "data": inventory.as_json()}
    )


@transaction.atomic
def cluster_record_observation(
    *, cluster_id: int, at: datetime, inventory: Inventory | None, observation: Observation
) -> HealthSample | None:
    """Apply one observation to the cluster row; the sample to store, or None if a newer
    observation was recorded meanwhile (a late result is dropped)."""
    cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
    if cluster is None or (cluster.last_probe_at is not None and cluster.last_probe_at > at):
        return None
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
    if verdict.changed_from(previous):
        cluster.status = verdict.status
        cluster.status_changed_at = at
        ClusterTransition.objects.create(
            cluster=cluster,
            at=at,
            from_status=previous,
            to_status=verdict.status,
            reason=observation.reason[:64],
            message=observation.message[:500],
        )
        publish_cluster_on_commit(cluster.pk)
        if previous == ClusterStatus.UNKNOWN and verdict.status in (
            ClusterStatus.READY,
            ClusterStatus.DEGRADED,
        ):
            _evaluate_policies_soon(cluster.pk)
    if verdict.status == observation.status:
        cluster.status_reason = observation.reason[:64]
        cluster.status_message = observation.message[:500]
    cluster.save()
    pods = inventory.pods_by_phase if inventory else {}
    return HealthSample(
        cluster_id=cluster.pk,
        at=at,
        status=cluster.status,
        api_latency_ms=inventory.api_latency_ms if inventory else None,
        nodes_total=len(inventory.nodes) if inventory else 0,
        nodes_ready=inventory.nodes_ready if inventory else 0,
        pods_running=pods.get("Running", 0),
        pods_pending=pods.get("Pending", 0),
        pods_failed=pods.get("Failed", 0) + (inventory.pods_crashlooping if inventory else 0),
        cpu_requested_millis=inventory.requested_cpu_millis if inventory else 0,
        memory_requested_bytes=inventory.requested_memory_bytes if inventory else 0,
        warning_events=inventory.warning_events if inventory else 0,
    )


def _evaluate_policies_soon(cluster_id: int) -> None:
    """A cluster seen for the first time gets its compliance now, not at the next sweep."""

    def send() -> None:
        from policies.tasks import policies_evaluate_batch_task

        try:
            policies_evaluate_batch_task.delay([cluster_id])
        except Exception:  # the broker is down: the periodic sweep covers it
            logger.warning("could not queue the first evaluation of cluster %s", cluster_id)

    transaction.on_commit(send)


def record_probe(result: ProbeResult) -> HealthSample | None:
    if result.inventory is not None:
        observation = observe_inventory(result.inventory)
    else:
        assert result.error is not None
        observation = observe_failure(result.error.code, result.error.message)
    return cluster_record_observation(
        cluster_id=result.cluster_id,
        at=result.at,
        inventory=result.inventory,
        observation=observation,
    )


def clusters_collect(*, cluster_ids: list[int]) -> dict[str, int]:
    """Probe a shard of push-mode clusters and record everything; returns counts by status."""
    clusters = list(
        Cluster.objects.filter(pk__in=cluster_ids, mode=ClusterMode.PUSH).select_related("team")
    )
    if not clusters:
        return {}
    # Credentials are read (and audited) here, in this thread: the probe threads then
    # touch only the network, never the database.
    results: list[ProbeResult] = []
    targets: list[tuple[Cluster, k8s.ApiClient]] = []
    for cluster in clusters:
        try:
            targets.append((cluster, cluster_api_client(cluster=cluster)))
        except ClusterConnectError as error:
            results.append(ProbeResult(cluster.pk, timezone.now(), error=error))
    if targets:
        workers = min(settings.KEELSON_COLLECT_THREADS, len(targets))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            results += pool.map(lambda t: cluster_probe_remote(cluster=t[0], api=t[1]), targets)
    samples = [sample for result in results if (sample := record_probe(result)) is not None]
    samples_insert(samples)
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample.status] = counts.get(sample.status, 0) + 1
    return counts


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
            if cluster.status == ClusterStatus.UNREACHABLE:
                continue
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
        samples.append(HealthSample(cluster_id=cluster_id, at=now, status=cluster.status))
    samples_insert(samples)
    return len(samples)


def clusters_collect_fanout() -> int:
    """Enqueue one collection task per shard; returns the number of shards sent."""
    from clusters.tasks import clusters_collect_shard_task

    agents_mark_silent()
    ids = list(
        Cluster.objects.filter(mode=ClusterMode.PUSH).order_by("pk").values_list("pk", flat=True)
    )
    size = settings.KEELSON_COLLECT_SHARD_SIZE
    shards = [ids[start : start + size] for start in range(0, len(ids), size)]
    for shard in shards:
        clusters_collect_shard_task.apply_async(
            args=[shard], expires=settings.KEELSON_COLLECT_INTERVAL
        )
    return len(shards)


def agent_report(*, cluster: Cluster, inventory: Inventory) -> HealthSample | None:
    """A pull-mode agent's heartbeat with its inventory: recorded like a probe."""
    sample = record_probe(ProbeResult(cluster.pk, timezone.now(), inventory=inventory))
    if sample is not None:
        sample.save()
    return sample
