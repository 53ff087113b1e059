"""Pull-mode agents heartbeating to the hub's agent API, at an interval or back to back."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.simulator.clusters import agent_inventory
from benchmarks.simulator.shape import PROFILES


@dataclass
class AgentStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    late: int = 0  # interval mode: a heartbeat that started over one interval late
    statuses: dict[str, int] = field(default_factory=dict)  # answers other than 200
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

        elapsed = max(self.finished - self.started, 1e-9)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "late": self.late,
            "statuses": self.statuses,
            "seconds": round(elapsed, 2),
            "rate": round(self.ok / elapsed, 1),
            "p50_ms": round(pct(50), 1),
            "p99_ms": round(pct(99), 1),
        }


async def run_agents(
    *,
    hub: str,
    tokens: list[str],
    duration: float,
    interval: float | None = None,
    concurrency: int = 64,
) -> AgentStats:
    """Heartbeat as `len(tokens)` agents for `duration` seconds: each every `interval`
    seconds (random phase), or, with no interval, back to back from `concurrency`
    connections (the rate the hub absorbs)."""
    import aiohttp

    url = hub.rstrip("/") + "/api/v1/agent/heartbeat"
    bodies = [json.dumps({"inventory": agent_inventory(p)}).encode() for p in range(PROFILES)]
    stats = AgentStats(started=time.monotonic())
    deadline = stats.started + duration
    # An agent heartbeating at an interval opens a new connection each time (the hub drops
    # idle keep-alive connections after 5 s); back to back, connections are kept.
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=interval is not None)
    timeout = aiohttp.ClientTimeout(total=60)

    async def beat(session: aiohttp.ClientSession, index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
        started = time.monotonic()
        stats.sent += 1
        try:
            async with session.post(url, data=bodies[index % PROFILES], headers=headers) as reply:
                await reply.read()
                if reply.status == 200:
                    stats.ok += 1
                    stats.latencies.append(time.monotonic() - started)
                else:
                    stats.errors += 1
                    key = str(reply.status)
                    stats.statuses[key] = stats.statuses.get(key, 0) + 1
        except (aiohttp.ClientError, TimeoutError) as error:
            stats.errors += 1
            key = type(error).__name__
            stats.statuses[key] = stats.statuses.get(key, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if interval is None:
            counter = iter(range(10**12))

            async def closed_loop() -> None:
                while time.monotonic() < deadline:
                    await beat(session, next(counter) % len(tokens))

            await asyncio.gather(*(closed_loop() for _ in range(concurrency)))
        else:
            period = interval

            async def agent(index: int) -> None:
                due = stats.started + random.uniform(0, period)  # noqa: S311
                while due < deadline:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if time.monotonic() - due > period:
                        stats.late += 1
                    await beat(session, index)
                    due += period

            await asyncio.gather(*(agent(i) for i in range(len(tokens))))
    stats.finished = time.monotonic()
    return stats
