"""Collection at scale: the real `clusters_collect_fanout` / `clusters_collect` shards on
real Celery workers (`clusters` queue) over the simulated fleet, and the time to mark a
killed cluster Unreachable with the real hysteresis at the configured interval."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from benchmarks.procs import Sampler, SimulatorProcess, start_workers, stop
from benchmarks.results import Row
from clusters.choices import ClusterStatus
from clusters.models import Cluster, ClusterTransition, HealthSample
from clusters.services.collection import clusters_collect_fanout
from clusters.tasks import clusters_collect_shard_task
from core.celery import app

GIB = 2**30


def _say(message: str) -> None:
    print(f"  [collection] {message}", flush=True)  # noqa: T201


def _wait_probed(ids: list[int], since: datetime, timeout: float) -> tuple[int, float]:
    """Wait until every cluster has a probe at or after `since`; (probed, seconds)."""
    started = time.monotonic()
    probed = 0
    while time.monotonic() - started < timeout:
        probed = Cluster.objects.filter(pk__in=ids, last_probe_at__gte=since).count()
        if probed >= len(ids):
            break
        time.sleep(0.5)
    return probed, time.monotonic() - started


def _send_all(ids: list[int]) -> None:
    size = settings.KEELSON_COLLECT_SHARD_SIZE
    for start in range(0, len(ids), size):
        clusters_collect_shard_task.apply_async(args=[ids[start : start + size]])


def run(*, simulator: SimulatorProcess, ids: list[int], workers: int, intervals: int) -> list[Row]:
    interval = settings.KEELSON_COLLECT_INTERVAL
    count = len(ids)
    rows: list[Row] = []
    app.control.purge()
    procs = start_workers(workers)
    try:
        pids = {f"worker{i}": p.pid for i, p in enumerate(procs)}
        pids["simulator"] = simulator.process.pid

        # 1. Cold pass: every credential decrypted (audited), every client built, every
        #    TLS connection opened. Shards without expiry so none is dropped.
        _say(f"cold pass over {count} clusters with {workers} worker(s)")
        since = timezone.now()
        _send_all(ids)
        probed, cold = _wait_probed(ids, since, timeout=max(300, count / 5))
        rows.append(
            Row(
                "collection",
                "first pass (cold: decrypt, client, TLS)",
                f"{probed}/{count} clusters in {cold:.1f} s",
                value=cold,
                detail={"probed": probed},
            )
        )

        # 2. Warm capacity: all shards at once, measure throughput and CPU per cluster.
        _say("warm pass (capacity)")
        sampler = Sampler(pids).start()
        since = timezone.now()
        _send_all(ids)
        probed, warm = _wait_probed(ids, since, timeout=max(300, count / 5))
        sampler.stop()
        worker_cpu = sum(sampler.cpu_seconds(f"worker{i}") for i in range(workers))
        per_worker_rate = probed / warm / workers
        per_core = probed / max(worker_cpu, 1e-9)
        rows.append(
            Row(
                "collection",
                "throughput per worker process (warm)",
                f"{per_worker_rate:.0f} clusters/s ({probed / warm:.0f}/s with {workers})",
                value=per_worker_rate,
                detail={"wall_s": warm, "worker_cpu_s": worker_cpu, "probed": probed},
            )
        )
        rows.append(
            Row(
                "collection",
                f"clusters one worker tracks at {interval} s",
                f"{per_core * interval:.0f} per busy core "
                f"({1000 / per_core:.1f} ms CPU per cluster; "
                f"{per_worker_rate * interval:.0f} at the measured wall rate)",
                value=per_core * interval,
                detail={
                    "cpu_ms_per_cluster": 1000 / per_core,
                    "simulator_cpu_ms_per_cluster": 1000
                    * sampler.cpu_seconds("simulator")
                    / max(probed, 1),
                },
            )
        )

        # 3. Steady state at the interval, as beat drives it (fan-out with expiry), with
        #    one cluster killed to time the Unreachable verdict.
        # The victim sits in the first shard, which every interval probes first: its time to
        # Unreachable measures the hysteresis at the interval, while the missed-heartbeat
        # figure below says whether the workers keep up with the rest of the fleet.
        victim_index = min(10, count - 1)
        victim = ids[victim_index]
        _say(f"{intervals} intervals of {interval} s; cluster #{victim_index} killed in #1")
        sampler = Sampler(pids).start()
        ticks: list[datetime] = []
        killed_at: datetime | None = None
        unreachable_at: datetime | None = None
        next_tick = time.monotonic()
        index = 0
        while True:
            ticks.append(timezone.now())
            clusters_collect_fanout()
            next_tick += interval
            if index == 0:
                # Kill at a random-looking phase inside the first interval.
                time.sleep(interval * 0.37)
                simulator.control(f"kill?ids={victim_index}&mode=reset")
                killed_at = timezone.now()
            index += 1
            while time.monotonic() < next_tick:
                if unreachable_at is None:
                    unreachable_at = (
                        ClusterTransition.objects.filter(
                            cluster_id=victim, to_status=ClusterStatus.UNREACHABLE
                        )
                        .values_list("at", flat=True)
                        .first()
                    )
                time.sleep(min(1.0, max(0.0, next_tick - time.monotonic())))
            done = index >= intervals and (unreachable_at is not None or index >= intervals + 4)
            if done:
                break
        ticks.append(timezone.now())
        sampler.stop()
        simulator.control(f"revive?ids={victim_index}")

        missed = []
        for start, end in itertools.pairwise(ticks[: intervals + 1]):
            seen = (
                HealthSample.objects.filter(cluster_id__in=ids, at__gte=start, at__lt=end)
                .values("cluster_id")
                .distinct()
                .count()
            )
            missed.append(count - seen)
        steady = missed[1:] if len(missed) > 1 else missed
        worker_cpu_pct = [sampler.cpu_percent(f"worker{i}") for i in range(workers)]
        worker_rss = [sampler.rss_max[f"worker{i}"] for i in range(workers)]
        nproc = __import__("os").cpu_count() or 1
        machine_pct = sum(worker_cpu_pct) / nproc
        rows.append(
            Row(
                "collection",
                f"missed heartbeats, {count} clusters, {workers} workers, {interval} s",
                f"{sum(steady)} of {count * len(steady)} probes missed "
                f"(per interval: {', '.join(map(str, missed))})",
                target="0",
                ok=sum(steady) == 0,
                value=float(sum(steady)),
                detail={"per_interval": missed},
            )
        )
        rows.append(
            Row(
                "collection",
                f"worker CPU at {count} clusters / {interval} s",
                f"{machine_pct:.0f}% of {nproc} cores "
                f"({', '.join(f'{p:.0f}%' for p in worker_cpu_pct)} of a core each); "
                f"simulator {sampler.cpu_percent('simulator'):.0f}%",
                target="< 70% of 2 cores at 10,000" if count >= 10000 else "",
                ok=(machine_pct < 70 and sum(steady) == 0) if count >= 10000 else None,
                value=machine_pct,
                detail={"worker_cpu_percent": worker_cpu_pct},
            )
        )
        rows.append(
            Row(
                "collection",
                "worker memory (RSS, max)",
                f"{sum(worker_rss) / GIB:.2f} GiB total "
                f"({', '.join(f'{r / 2**20:.0f} MiB' for r in worker_rss)}); "
                f"simulator {sampler.rss_max['simulator'] / 2**20:.0f} MiB",
                target="< 8 GiB",
                ok=sum(worker_rss) < 8 * GIB,
                value=sum(worker_rss) / GIB,
            )
        )
        assert killed_at is not None
        if unreachable_at is not None:
            seconds = (unreachable_at - killed_at).total_seconds()
            rows.append(
                Row(
                    "health",
                    f"dead cluster marked Unreachable (interval {interval} s, "
                    f"{settings.KEELSON_HEALTH_UNREACHABLE_AFTER} failed probes, first shard)",
                    f"{seconds:.1f} s",
                    target="<= 90 s",
                    ok=seconds <= 90,
                    value=seconds,
                )
            )
        else:
            rows.append(
                Row(
                    "health",
                    "dead cluster marked Unreachable",
                    f"not within {(ticks[-1] - killed_at).total_seconds():.0f} s",
                    target="<= 90 s",
                    ok=False,
                )
            )
        statuses = dict(
            Cluster.objects.filter(pk__in=ids)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        _say(f"statuses after the run: {statuses}; simulator: {simulator.control('stats')}")
    finally:
        app.control.purge()
        for process in procs:
            stop(process)
    return rows


def details() -> dict[str, Any]:
    return {
        "interval_s": settings.KEELSON_COLLECT_INTERVAL,
        "shard_size": settings.KEELSON_COLLECT_SHARD_SIZE,
        "threads_per_shard": settings.KEELSON_COLLECT_THREADS,
    }
