"""Scale-out across hosts: collection and sweep throughput with the workers on one host,
then on two (network namespaces joined by veth, benchmarks/netns.py), reported as the
ratio two/one. The same number of worker processes runs on each host (`--workers`), so two
hosts have twice the workers; on a machine whose cores both "hosts" share, the ratio says
what the coordination costs and how far more processes help, not what a second machine's
cores would add (docs/operations.md, "Sizing").

Collection: every cluster's probe through `clusters_collect_shard_task` (warm: after a
first pass that decrypted credentials and opened connections; the median of three).
Sweep: every batch of `policies_evaluate_batch_task` over the simulated fleet, every pair
judged anew (the inventories restamped before each sweep; the second of two is measured)."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from django.utils import timezone

from benchmarks import fleet
from benchmarks.collection import _send_all, _wait_probed
from benchmarks.env import BENCH_DIR, child_env
from benchmarks.netns import Host, two_hosts
from benchmarks.procs import SimulatorProcess
from benchmarks.results import Row
from benchmarks.simulator import TLSFiles
from benchmarks.sweep import _policies, _stamp_inventories, _sweep
from clusters.models import ClusterInventory
from core.celery import app
from policies.choices import ResultStatus


def _say(message: str) -> None:
    print(f"  [hosts] {message}", flush=True)  # noqa: T201


def _start(hosts: list[Host], workers: int) -> None:
    """`workers` solo worker processes on each host, answering pings."""
    wanted = set()
    for host in hosts:
        for index in range(workers):
            wanted.add(
                host.start_worker(
                    f"worker{index}",
                    queues="clusters,policies",
                    loglevel="warning",
                    extra=["-P", "solo", "--without-gossip", "--without-mingle"],
                )
            )
    deadline = time.monotonic() + 120
    while wanted and time.monotonic() < deadline:
        for reply in app.control.ping(destination=sorted(wanted), timeout=1) or []:
            wanted -= set(reply)
    if wanted:
        raise RuntimeError(f"workers {sorted(wanted)} not up within 120 s; see {BENCH_DIR}/hosts")


def _measure(ids: list[int], timeout: float) -> dict[str, Any]:
    """A cold collection pass then three warm ones, then two sweeps; the warm rates
    (the median collection pass, the second sweep)."""
    since = timezone.now()
    _send_all(ids)
    _wait_probed(ids, since, timeout)
    passes = []
    for _ in range(3):  # the median of three warm passes (a pass is short at --quick)
        since = timezone.now()
        _send_all(ids)
        passes.append(_wait_probed(ids, since, timeout))
    probed, seconds = sorted(passes, key=lambda p: p[1])[1]
    for _ in range(2):  # the first sweep warms the workers' clients up, as for collection
        ClusterInventory.objects.filter(cluster_id__in=ids).update(collected_at=timezone.now())
        wall, counts, lost = _sweep(timeout)
    evaluated = sum(v for k, v in counts.items() if k in ResultStatus.values)
    return {
        "collected": probed,
        "collection_s": seconds,
        "collection_rate": probed / seconds,
        "evaluated": evaluated,
        "sweep_s": wall,
        "sweep_rate": evaluated / wall,
        "lost_batches": lost,
    }


def run(*, tls: TLSFiles, clusters: int, policies: int, workers: int) -> list[Row]:
    if shutil.which("ip") is None:
        return [Row("hosts", "one host vs two", "not run: no `ip` command", ok=False)]
    simulator = SimulatorProcess(clusters)
    logs = BENCH_DIR / "hosts"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    measured: dict[str, dict[str, Any]] = {}
    try:
        fleet.reset()
        enabled = _policies(policies)
        ids, _ = fleet.seed_simulated(
            count=clusters, port=simulator.port, tls=tls, team_name=fleet.SWEEP_TEAM
        )
        _stamp_inventories(ids)
        timeout = max(600.0, clusters * 0.5)
        with two_hosts(child_env(), logs, loopback_ports=[simulator.port]) as hosts:
            for layout, used in (("one", hosts[:1]), ("two", hosts)):
                _say(f"{layout} host(s), {workers} worker(s) each, {clusters} clusters")
                app.control.purge()
                _start(used, workers)
                try:
                    measured[layout] = _measure(ids, timeout)
                finally:
                    for host in used:
                        host.stop()
                _say(f"{layout}: {measured[layout]}")
    except (RuntimeError, OSError) as error:
        return [Row("hosts", "one host vs two", f"not run: {error}", ok=False)]
    finally:
        app.control.purge()
        simulator.stop()
    one, two = measured["one"], measured["two"]
    pairs = clusters * len(enabled)
    rows = []
    for what, key, unit in (
        ("collection", "collection_rate", "clusters/s"),
        ("sweep", "sweep_rate", "evaluations/s"),
    ):
        ratio = two[key] / one[key]
        rows.append(
            Row(
                "hosts",
                f"{what} throughput, {workers} worker(s) per host, one host vs two "
                f"(one machine: both hosts share its {os.cpu_count()} cores)",
                f"{one[key]:,.0f} vs {two[key]:,.0f} {unit}: ratio {ratio:.2f}",
                value=ratio,
                detail={"one": one, "two": two},
            )
        )
    complete = all(
        m["collected"] == clusters and m["evaluated"] == pairs and not m["lost_batches"]
        for m in (one, two)
    )
    rows.append(
        Row(
            "hosts",
            "every cluster collected and every pair judged, both layouts",
            f"{two['collected']}/{clusters} collected, {two['evaluated']}/{pairs} judged "
            f"(one host: {one['collected']}, {one['evaluated']})",
            target="all",
            ok=complete,
        )
    )
    return rows
