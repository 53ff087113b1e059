"""Placement over a large team: `placement_simulate` in-process and through the API
(p50/p99), and many applications placed with `placement_decide`."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from benchmarks.fleet import seed_placement
from benchmarks.results import Row, percentile
from fleet.accounts.models import Team
from fleet.placement.models import Application
from fleet.placement.services import (
    application_create,
    placement_candidates,
    placement_decide,
    placement_simulate,
)

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", resources: {requests: {cpu: 250m, memory: 256Mi}}}
"""

# A placement that exercises every part of the scheduler: selector, field predicate,
# taints, four prioritizers, a cluster count, spread and capacity-weighted division.
SPEC: dict[str, Any] = {
    "selector": "env in (prod,staging),pci!=true",
    "fields": {"provider": ["aws", "gcp", "azure", "onprem"]},
    "prioritizers": {"least_allocated": 2, "balance": 1, "cheapest": 1, "steady": 1},
    "number_of_clusters": 20,
    "max_per": {"region": 4},
    "min_distinct": {"provider": 3},
    "replicas": 60,
    "division": "capacity",
}


def _say(message: str) -> None:
    print(f"  [placement] {message}", flush=True)  # noqa: T201


def _app(owner: Team, name: str, spec: dict[str, Any] | None = None) -> Application:
    return application_create(
        actor=None,
        team=owner,
        name=name,
        namespace="shop",
        manifests=MANIFESTS,
        placement=spec if spec is not None else SPEC,
    )


def _timed(call: Any, iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run_inprocess(*, owner: Team, clusters: int, iterations: int) -> tuple[list[Row], str]:
    application = _app(owner, "bench-simulate")
    decision = placement_simulate(application=application)
    _say(
        f"{len(decision.chosen)} chosen, {len(decision.excluded)} excluded, "
        f"{len(decision.not_selected)} not selected"
    )
    placement_simulate(application=application)  # warm
    samples = _timed(lambda: placement_simulate(application=application), iterations)
    loading = _timed(lambda: placement_candidates(application), max(5, iterations // 4))
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    rows = [
        Row(
            "placement",
            f"placement_simulate over {clusters} clusters, in-process (p50 / p99)",
            f"{p50:.1f} / {p99:.1f} ms (candidates loaded in {percentile(loading, 50):.1f} ms)",
            target="p99 <= 20 ms",
            ok=p99 <= 20,
            value=p99,
            detail={
                "iterations": iterations,
                "p50_ms": p50,
                "p99_ms": p99,
                "candidates_p50_ms": percentile(loading, 50),
                "chosen": len(decision.chosen),
                "excluded": len(decision.excluded),
            },
        )
    ]
    return rows, application.name


def run_api(*, base: str, token: str, name: str, clusters: int, iterations: int) -> list[Row]:
    url = f"{base}/api/v1/applications/{name}/simulate/"
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    size = 0

    def call() -> None:
        nonlocal size
        request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310
            body = reply.read()
            size = len(body)
            if reply.status != 200:
                raise RuntimeError(f"simulate answered {reply.status}")
        json.loads(body)

    call()  # warm
    samples = _timed(call, iterations)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return [
        Row(
            "placement",
            f"POST /api/v1/applications/<name>/simulate/ over {clusters} clusters (p50 / p99)",
            f"{p50:.1f} / {p99:.1f} ms ({size / 1024:.0f} KiB response)",
            target="p99 <= 100 ms",
            ok=p99 <= 100,
            value=p99,
            detail={"iterations": iterations, "p50_ms": p50, "p99_ms": p99, "bytes": size},
        )
    ]


def run_decide(*, teams: int, clusters_per_team: int, applications: int) -> list[Row]:
    """`applications` spread over `teams` teams of `clusters_per_team` clusters each (a
    fleet split by team, as placement only considers the application's team)."""
    _say(f"seeding {teams} teams of {clusters_per_team} clusters")
    owners = [
        seed_placement(
            count=clusters_per_team,
            seed=index,
            team_name=f"bench-team-{index:03d}",
            prefix=f"t{index:03d}",
        )[0]
        for index in range(teams)
    ]
    _say(f"creating {applications} applications")
    started = time.perf_counter()
    apps = [
        _app(
            owners[index % teams],
            f"bench-app-{index:05d}",
            {**SPEC, "number_of_clusters": 3 + index % 10, "replicas": 3 + index % 30},
        )
        for index in range(applications)
    ]
    created = time.perf_counter() - started
    _say(f"placing {applications} applications with placement_decide")
    started = time.perf_counter()
    for application in apps:
        placement_decide(application=application)
    total = time.perf_counter() - started
    return [
        Row(
            "placement",
            f"{applications} applications placed (placement_decide; {teams} teams of "
            f"{clusters_per_team} clusters)",
            f"{total:.1f} s ({1000 * total / applications:.1f} ms per application; "
            f"created in {created:.1f} s)",
            value=total,
            detail={"per_application_ms": 1000 * total / applications, "create_s": created},
        )
    ]
