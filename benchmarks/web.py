"""The hub's web process under load (uvicorn, as `make run` starts it): pull-agent
heartbeats it absorbs, and websocket fan-out of a cluster change to /ws/fleet/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from django.db import transaction

from benchmarks.procs import Sampler, SimulatorProcess, Uvicorn, write_tokens
from benchmarks.results import Row, percentile
from clusters.models import Cluster
from clusters.realtime import publish_cluster_on_commit


def _say(message: str) -> None:
    print(f"  [web] {message}", flush=True)  # noqa: T201


def run_agents(
    *, web: Uvicorn, tokens: list[str], duration: float, concurrency: int, target_agents: int
) -> list[Row]:
    path = write_tokens(tokens)
    _say(f"{len(tokens)} agents heartbeating back to back ({concurrency} connections)")
    agents = SimulatorProcess(
        0,
        extra=[
            "--hub",
            web.base,
            "--agent-tokens",
            str(path),
            "--agent-duration",
            str(duration),
            "--agent-concurrency",
            str(concurrency),
        ],
    )
    sampler = Sampler({"uvicorn": web.process.pid}).start()
    agents.wait(timeout=duration + 120)
    sampler.stop()
    summary: dict[str, Any] = {}
    for line in agents.lines:
        if line.startswith("{") and '"agents"' in line:
            summary = json.loads(line)["agents"]
    rate = float(summary.get("rate", 0.0))
    needed = target_agents / 30
    return [
        Row(
            "agents",
            "pull-agent heartbeats absorbed by one uvicorn process",
            f"{rate:.0f}/s (p50 {summary.get('p50_ms')} ms, p99 {summary.get('p99_ms')} ms, "
            f"{summary.get('errors')} errors; uvicorn {sampler.cpu_percent('uvicorn'):.0f}% CPU) "
            f"= {rate * 30:,.0f} agents at 30 s",
            target=f">= {needed:.0f}/s ({target_agents:,} agents at 30 s)",
            ok=rate >= needed and not summary.get("errors"),
            value=rate,
            detail=summary,
        )
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
