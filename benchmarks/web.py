"""The hub's web process under load (uvicorn, as `make run` starts it): pull-agent
heartbeats it absorbs, and websocket fan-out of a cluster change to /ws/fleet/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from django.db import transaction

from benchmarks.fleet import seed_agents
from benchmarks.procs import Sampler, SimulatorProcess, Uvicorn, write_tokens
from benchmarks.results import Row, percentile
from benchmarks.simulator import PROFILES, agent_inventory
from clusters.models import Cluster
from clusters.realtime import publish_cluster_on_commit


def _say(message: str) -> None:
    print(f"  [web] {message}", flush=True)  # noqa: T201


# As `make run` starts the web (fleet/launcher.py --web-workers).
WEB_WORKERS = 2
INTERVAL = 30.0


def _heartbeats(
    web: Uvicorn,
    tokens: list[str],
    *,
    duration: float,
    concurrency: int,
    interval: float | None = None,
) -> tuple[dict[str, Any], Sampler]:
    """The simulator's agents against `web`: its summary, and the web processes' CPU."""
    extra = ["--hub", web.base, "--agent-tokens", str(write_tokens(tokens))]
    extra += ["--agent-duration", str(duration), "--agent-concurrency", str(concurrency)]
    if interval:
        extra += ["--agent-interval", str(interval)]
    agents = SimulatorProcess(0, extra=extra)
    sampler = Sampler(web.serving()).start()
    agents.wait(timeout=duration + 120)
    sampler.stop()
    summary: dict[str, Any] = {}
    for line in agents.lines:
        if line.startswith("{") and '"agents"' in line:
            summary = json.loads(line)["agents"]
    return summary, sampler


def _cpu(sampler: Sampler, served: int) -> tuple[str, float]:
    """'uvicorn 76% CPU' (each process, % of one core) and CPU ms per heartbeat."""
    names = list(sampler.procs)
    each = ", ".join(f"{sampler.cpu_percent(name):.0f}%" for name in names)
    total = sum(sampler.cpu_seconds(name) for name in names)
    return f"uvicorn {each} CPU", 1000 * total / max(served, 1)


def _absorbed(summary: dict[str, Any], sampler: Sampler) -> tuple[str, float, dict[str, Any]]:
    rate = float(summary.get("rate", 0.0))
    cpu, per_beat = _cpu(sampler, int(summary.get("ok", 0)))
    measured = (
        f"{rate:.0f}/s (p50 {summary.get('p50_ms')} ms, p99 {summary.get('p99_ms')} ms, "
        f"{summary.get('errors')} errors; {cpu}, {per_beat:.2f} ms CPU per heartbeat) "
        f"= {rate * INTERVAL:,.0f} agents at 30 s"
    )
    return measured, rate, {**summary, "cpu_ms_per_heartbeat": round(per_beat, 3)}


async def _first_heartbeats(base: str, tokens: list[str]) -> tuple[float, int]:
    """Each new agent's first heartbeat (Unknown -> Ready: the full path, transition,
    publish, first policy evaluation queued) through the hub, 32 at a time, so the runs
    that follow measure the steady state; heartbeats per second and errors."""
    import aiohttp

    url = base + "/api/v1/agent/heartbeat"
    bodies = [json.dumps({"inventory": agent_inventory(p)}).encode() for p in range(PROFILES)]
    slots = asyncio.Semaphore(32)
    errors = 0

    async def first(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
        async with (
            slots,
            session.post(url, data=bodies[index % PROFILES], headers=headers) as reply,
        ):
            await reply.read()
            errors += reply.status != 200

    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(first(session, index) for index in range(len(tokens))))
    return len(tokens) / max(time.perf_counter() - started, 1e-9), errors


def run_agents(
    *, web: Uvicorn, tokens: list[str], duration: float, concurrency: int, target_agents: int
) -> list[Row]:
    """Heartbeats absorbed back to back by one uvicorn process (`web`) and by the web as
    `make run` starts it; on full runs (`duration` of an interval or more) also
    `target_agents` agents heartbeating every 30 s for two intervals."""
    needed = target_agents / INTERVAL
    first, refused = asyncio.run(_first_heartbeats(web.base, tokens))
    _say(f"{len(tokens)} agents heartbeating back to back ({concurrency} connections)")
    measured, rate, detail = _absorbed(
        *_heartbeats(web, tokens, duration=duration, concurrency=concurrency)
    )
    rows = [
        Row(
            "setup",
            f"first heartbeat of {len(tokens)} agents (Unknown -> Ready), one uvicorn process",
            f"{first:.0f}/s, {refused} errors",
            value=first,
        ),
        Row(
            "agents",
            "pull-agent heartbeats absorbed by one uvicorn process",
            measured,
            value=rate,
            detail=detail,
        ),
    ]
    workers = Uvicorn(workers=WEB_WORKERS)
    try:
        _say(f"the same against {WEB_WORKERS} uvicorn workers")
        measured, rate, detail = _absorbed(
            *_heartbeats(workers, tokens, duration=duration, concurrency=concurrency)
        )
        rows.append(
            Row(
                "agents",
                f"pull-agent heartbeats absorbed by the web as `make run` starts it "
                f"({WEB_WORKERS} uvicorn workers)",
                measured,
                target=f">= {needed:.0f}/s ({target_agents:,} agents at 30 s)",
                ok=rate >= needed and not detail.get("errors"),
                value=rate,
                detail=detail,
            )
        )
        if duration >= INTERVAL and target_agents > len(tokens):
            rows += _at_interval(workers, tokens, target_agents)
    finally:
        workers.stop()
    return rows


def _at_interval(web: Uvicorn, tokens: list[str], target_agents: int) -> list[Row]:
    more = target_agents - len(tokens)
    _say(f"enrolling {more} more pull agents")
    extra, seconds = seed_agents(count=more, start=len(tokens))
    first, refused = asyncio.run(_first_heartbeats(web.base, extra))
    _say(f"{target_agents} agents heartbeating every {INTERVAL:.0f} s for two intervals")
    summary, sampler = _heartbeats(
        web, tokens + extra, duration=2 * INTERVAL, concurrency=64, interval=INTERVAL
    )
    cpu, per_beat = _cpu(sampler, int(summary.get("ok", 0)))
    errors, late = summary.get("errors", -1), summary.get("late", -1)
    p99 = float(summary.get("p99_ms", 0.0))
    return [
        Row(
            "setup",
            f"enroll {more} more pull agents; their first heartbeats ({WEB_WORKERS} workers)",
            f"{seconds:.1f} s; {first:.0f}/s, {refused} errors",
            value=seconds,
        ),
        Row(
            "agents",
            f"{target_agents:,} agents heartbeating every 30 s, two intervals "
            f"({WEB_WORKERS} uvicorn workers)",
            f"{summary.get('ok')} of {summary.get('sent')} heartbeats answered, {errors} errors, "
            f"{late} late (p50 {summary.get('p50_ms')} ms, p99 {p99:.0f} ms; {cpu}, "
            f"{per_beat:.2f} ms CPU per heartbeat)",
            target="0 errors, 0 late, p99 <= 1 s",
            ok=errors == 0 and late == 0 and p99 <= 1000,
            value=p99,
            detail={**summary, "cpu_ms_per_heartbeat": round(per_beat, 3)},
        ),
    ]


def _publish(cluster_id: int, tag: str) -> None:
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster_id).update(status_message=tag)
        publish_cluster_on_commit(cluster_id)


async def _fanout(
    base: str, cookie: str, clients: int, rounds: int, cluster_id: int
) -> tuple[list[float], int, float, int]:
    import aiohttp

    url = base.replace("http://", "ws://") + "/ws/fleet/"
    headers = {"Cookie": cookie, "Origin": base}
    received: dict[str, list[float]] = {}
    ready = 0
    connected = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal ready
        async with session.ws_connect(url, headers=headers, heartbeat=None) as ws:
            first = await ws.receive_json()
            if first.get("type") != "snapshot":
                return
            ready += 1
            if ready == clients:
                connected.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                body = json.loads(message.data)
                changed = (body.get("data") or {}).get("changed") or {}
                tag = changed.get("status_message", "")
                if tag.startswith("bench-round-"):
                    received.setdefault(tag, []).append(time.monotonic())

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), timeout=60)
        connect_s = time.monotonic() - started
        clients = ready  # a client whose connection failed is reported, not waited for
        await asyncio.sleep(1.5)  # past the coalescing window of the first snapshot
        latencies: list[float] = []
        lost = 0
        for round_number in range(rounds):
            tag = f"bench-round-{round_number}"
            sent = time.monotonic()
            await asyncio.to_thread(_publish, cluster_id, tag)
            deadline = sent + 10
            while len(received.get(tag, [])) < clients and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            arrivals = received.get(tag, [])
            latencies += [(t - sent) * 1000 for t in arrivals]
            lost += clients - len(arrivals)
            await asyncio.sleep(1.2)  # let every connection's 1 s coalescing window pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, lost, connect_s, ready


def run_fanout(
    *, web: Uvicorn, cookie: str, clients: int, rounds: int, cluster_id: int
) -> list[Row]:
    _say(f"{clients} websocket clients on /ws/fleet/, {rounds} published changes")
    sampler = Sampler({"uvicorn": web.process.pid}).start()
    latencies, lost, connect_s, connected = asyncio.run(
        _fanout(web.base, cookie, clients, rounds, cluster_id)
    )
    failed = clients - connected
    sampler.stop()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return [
        Row(
            "websocket",
            f"fan-out of a cluster change to {clients} /ws/fleet/ clients (p50 / p99)",
            f"{p50:.0f} / {p99:.0f} ms over {rounds} changes, {lost} lost "
            f"({connected} connected in {connect_s:.1f} s, {failed} failed; uvicorn RSS "
            f"{sampler.rss_max['uvicorn'] / 2**20:.0f} MiB)",
            target="p99 <= 2 s",
            ok=p99 <= 2000 and lost == 0 and failed == 0,
            value=p99,
            detail={
                "p50_ms": p50,
                "p99_ms": p99,
                "lost": lost,
                "failed_connections": failed,
                "deliveries": len(latencies),
            },
        )
    ]
