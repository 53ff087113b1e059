"""`python -m benchmarks [--clusters 10000] [--quick]` (or `make bench`): run every
benchmark of issue 9 on this machine, print one table and write var/bench/results.json.

It runs on its own database (keelson_bench), Redis databases (13, 14) and key prefix
unless DATABASE_URL, REDIS_URL, CELERY_BROKER_URL or KEELSON_REDIS_PREFIX say otherwise,
and it empties that database's clusters, applications and audit log first.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.env import BENCH_DIR, configure, machine

GROUPS = (
    "collection",
    "sweep",
    "ingest",
    "cost-ingest",
    "cost-usage",
    "placement",
    "agents",
    "agent-policies",
    "websocket",
    "decide",
    "metrics",
    "compliance",
    "alerts",
    "hosts",
    "gitops",
)


def _say(message: str) -> None:
    print(message, flush=True)  # noqa: T201


def _agent_policies(server: Any, count: int, tokens: list[str]) -> list[Any]:
    """The agent-policies group on `server`: the agents group's first `count` agents, and
    as many more as it lacks (enrolled, first heartbeat sent)."""
    import asyncio

    from benchmarks import agent_policies, fleet, web
    from benchmarks.results import Row

    rows: list[Row] = []
    tokens = tokens[:count]
    if len(tokens) < count:
        more = count - len(tokens)
        _say(f"agent-policies: enrolling {more} pull agents")
        extra, seconds = fleet.seed_agents(count=more, start=len(tokens))
        first, refused = asyncio.run(web._first_heartbeats(server.base, extra))
        tokens += extra
        rows.append(
            Row(
                "setup",
                f"enroll {more} pull agents; their first heartbeats (one uvicorn process)",
                f"{seconds:.1f} s; {first:.0f}/s, {refused} errors",
                value=seconds,
            )
        )
    names = [f"agent-{index:05d}" for index in range(count)]
    _say(f"agent-policies: {count} pull clusters fetch and report their policies")
    return rows + agent_policies.run(web=server, tokens=tokens, names=names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--clusters", type=int, default=10000, help="fleet size (10,000)")
    parser.add_argument("--quick", action="store_true", help="small and short: for development")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="Celery worker processes"
    )
    parser.add_argument("--intervals", type=int, default=0, help="collection intervals to run")
    parser.add_argument(
        "--only", default=",".join(GROUPS), help=f"comma-separated subset of {','.join(GROUPS)}"
    )
    parser.add_argument("--output", default=str(BENCH_DIR / "results.json"))
    args = parser.parse_args(argv)
    only = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = only - set(GROUPS)
    if unknown:
        parser.error(f"unknown benchmark group(s): {', '.join(sorted(unknown))}")

    configure()
    # Imported once Django is set up.
    from django.conf import settings

    from benchmarks import (
        alerts,
        collection,
        compliance,
        cost_ingest,
        fleet,
        gitops,
        hosts,
        ingest,
        placement,
        scrape,
        sweep,
        usage_ingest,
        web,
    )
    from benchmarks.procs import SimulatorProcess, Uvicorn
    from benchmarks.results import Row, table, write
    from benchmarks.simulator import ensure_tls

    quick = args.quick
    sizes = {
        "collection_clusters": min(args.clusters, 500) if quick else args.clusters,
        "intervals": args.intervals or (3 if quick else 4),
        "placement_clusters": args.clusters,
        "simulate_iterations": 15 if quick else 30,
        "api_iterations": 10 if quick else 20,
        "applications": 50 if quick else 5000,
        "teams": 5 if quick else 50,
        "clusters_per_team": 200,
        "agents": 200 if quick else 1000,
        "agent_seconds": 10 if quick else 30,
        "policy_agents": 1000,  # issue 30's figure, quick or not
        "ws_clients": 500,
        "ws_rounds": 5 if quick else 10,
        "ingest_rows": 50_000 if quick else 200_000,
        "sweep_clusters": min(args.clusters, 200) if quick else args.clusters,
        "sweep_policies": 50,
        "hosts_clusters": min(args.clusters, 200 if quick else 2000),
        "hosts_policies": 10 if quick else 20,
    }
    info = machine()
    started = datetime.now(UTC)
    header = [
        f"Keelson benchmarks, {started:%Y-%m-%d %H:%M} UTC ({'quick' if quick else 'full'} run)",
        f"machine: {info['nproc']} x {info['cpu']}, {info['memory_gib']} GiB RAM, "
        f"load average at start {info['loadavg_at_start']}, Python {info['python']}, "
        f"{info['psql']}",
        f"database {settings.DATABASES['default']['NAME']}; collection interval "
        f"{settings.KEELSON_COLLECT_INTERVAL} s, shard {settings.KEELSON_COLLECT_SHARD_SIZE}, "
        f"{settings.KEELSON_COLLECT_THREADS} threads per shard, {args.workers} worker(s)",
    ]
    for line in header:
        _say(line)
    rows: list[Row] = []
    fleet.reset()
    tls = ensure_tls(Path(os.environ["KEELSON_BENCH_TLS_DIR"]))

    if "collection" in only:
        count = sizes["collection_clusters"]
        _say(f"collection: simulator with {count} clusters")
        simulator = SimulatorProcess(count)
        try:
            ids, seconds = fleet.seed_simulated(count=count, port=simulator.port, tls=tls)
            rows.append(
                Row(
                    "setup",
                    f"register {count} simulated clusters (credential_store)",
                    f"{seconds:.1f} s",
                    value=seconds,
                )
            )
            rows += collection.run(
                simulator=simulator, ids=ids, workers=args.workers, intervals=sizes["intervals"]
            )
        finally:
            simulator.stop()

    owner = None
    app_name = ""
    if "sweep" in only:
        count = sizes["sweep_clusters"]
        _say(f"sweep: simulator with {count} clusters, {sizes['sweep_policies']} policies")
        simulator = SimulatorProcess(count)
        try:
            rows += sweep.run(
                simulator=simulator,
                tls=tls,
                clusters=count,
                policies=sizes["sweep_policies"],
                workers=args.workers,
            )
        finally:
            simulator.stop()

    if "hosts" in only:  # before placement: it resets the fleet to the simulated clusters
        count = sizes["hosts_clusters"]
        _say(f"hosts: workers on one host vs two (network namespaces), {count} clusters")
        rows += hosts.run(
            tls=tls, clusters=count, policies=sizes["hosts_policies"], workers=args.workers
        )

    if only & {"placement", "ingest", "cost-ingest", "cost-usage"}:
        count = sizes["placement_clusters"]
        _say(f"placement: a synthetic fleet of {count} clusters")
        owner, seconds = fleet.seed_placement(count=count)
        rows.append(
            Row("setup", f"seed {count} clusters for placement", f"{seconds:.1f} s", value=seconds)
        )
    if "ingest" in only and owner is not None:
        _say("ingest: samples_copy vs COPY")
        ids = list(owner.clusters.values_list("pk", flat=True))
        rows += ingest.run(cluster_ids=ids, rows=sizes["ingest_rows"])
    if "cost-ingest" in only and owner is not None:
        _say("cost-ingest: allocations_replace vs COPY")
        ids = list(owner.clusters.values_list("pk", flat=True))
        rows += cost_ingest.run(cluster_ids=ids, rows=sizes["ingest_rows"])
    if "placement" in only and owner is not None:
        found, app_name = placement.run_inprocess(
            owner=owner,
            clusters=sizes["placement_clusters"],
            iterations=sizes["simulate_iterations"],
        )
        rows += found
        _say("placement: divided placements, scheduler alone")
        rows += placement.run_divided(
            clusters=sizes["placement_clusters"], iterations=sizes["simulate_iterations"]
        )

    if only & {"placement", "agents", "agent-policies", "websocket"}:
        server = Uvicorn()
        try:
            if "placement" in only and app_name:
                _say("placement: through the API")
                rows += placement.run_api(
                    base=server.base,
                    token=fleet.api_token(),
                    name=app_name,
                    clusters=sizes["placement_clusters"],
                    iterations=sizes["api_iterations"],
                )
            tokens: list[str] = []
            if "agents" in only:
                _say(f"agents: enrolling {sizes['agents']} pull agents")
                tokens, _ = fleet.seed_agents(count=sizes["agents"])
                rows += web.run_agents(
                    web=server,
                    tokens=tokens,
                    duration=sizes["agent_seconds"],
                    concurrency=32,
                    target_agents=args.clusters,
                )
            if "agent-policies" in only:
                rows += _agent_policies(server, sizes["policy_agents"], tokens)
            if "websocket" in only:
                from clusters.models import Cluster

                target = Cluster.objects.order_by("pk").values_list("pk", flat=True).first()
                if target is None:
                    fleet.seed_placement(count=1)
                    target = Cluster.objects.order_by("pk").values_list("pk", flat=True).first()
                assert target is not None
                rows += web.run_fanout(
                    web=server,
                    cookie=fleet.session_cookie(),
                    clients=sizes["ws_clients"],
                    rounds=sizes["ws_rounds"],
                    cluster_id=target,
                )
        finally:
            server.stop()

    if "decide" in only:
        rows += placement.run_decide(
            teams=sizes["teams"],
            clusters_per_team=sizes["clusters_per_team"],
            applications=sizes["applications"],
        )

    if "cost-usage" in only and owner is not None:  # last: it replaces the inventories
        _say("cost-usage: usage ingestion and one hour of cost_compute")
        ids = list(owner.clusters.values_list("pk", flat=True))
        rows += usage_ingest.run(cluster_ids=ids, workers=args.workers)

    if "metrics" in only:
        _say(f"metrics: rendering /metrics for {args.clusters} clusters")
        rows += scrape.run(clusters=args.clusters, renders=5 if quick else 20)

    if "compliance" in only:
        _say(f"compliance: the overview's panel over {args.clusters} clusters x 50 policies")
        rows += compliance.run(clusters=args.clusters, runs=5 if quick else 20)
    if "alerts" in only:
        _say(f"alerts: evaluation for {args.clusters} clusters, {alerts.DEAD} becoming Unreachable")
        rows += alerts.run(clusters=args.clusters)
    if "gitops" in only:
        _say("gitops: sync of a repository of 200 applications and 50 policies (git daemon)")
        rows += gitops.run(applications=200, policies=50)

    finished = datetime.now(UTC)
    header[0] += f", {(finished - started).total_seconds() / 60:.0f} min"
    _say("")
    _say(table(rows, header))
    output = Path(args.output)
    write(
        output,
        rows,
        {
            "started": started.isoformat(),
            "finished": finished.isoformat(),
            "mode": "quick" if quick else "full",
            "machine": info,
            "sizes": sizes,
            "workers": args.workers,
            "collection": collection.details(),
            "command": "python -m benchmarks " + " ".join(argv or sys.argv[1:]),
        },
    )
    _say(f"\nwritten to {output}")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
