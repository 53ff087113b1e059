"""`python -m benchmarks.simulator`: serve the simulated fleet (and, optionally, run agents)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
from pathlib import Path

from benchmarks.simulator.agents import AgentStats, run_agents
from benchmarks.simulator.server import Simulator
from benchmarks.simulator.tls import ensure_tls


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _main(args: argparse.Namespace) -> int:
    tls = ensure_tls(Path(args.tls_dir))
    simulator = Simulator(args.clusters, tls)
    port = await simulator.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(  # noqa: T201
        json.dumps({"listening": f"https://127.0.0.1:{port}", "port": port, "ca": str(tls.ca)}),
        flush=True,
    )
    agents: asyncio.Task[AgentStats] | None = None
    if args.agent_tokens:
        tokens = Path(args.agent_tokens).read_text().split()
        agents = asyncio.create_task(
            run_agents(
                hub=args.hub,
                tokens=tokens,
                duration=args.agent_duration,
                interval=args.agent_interval or None,
                concurrency=args.agent_concurrency,
            )
        )
        agents.add_done_callback(lambda _: stop.set())
    await stop.wait()
    if agents is not None and agents.done():
        print(json.dumps({"agents": agents.result().summary()}), flush=True)  # noqa: T201
    await simulator.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulator")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--tls-dir", default=os.environ.get("KEELSON_BENCH_TLS_DIR", "var/bench/tls")
    )
    parser.add_argument("--hub", default="http://127.0.0.1:8000")
    parser.add_argument("--agent-tokens", help="a file of agent tokens, one a line")
    parser.add_argument("--agent-interval", type=float, default=0.0, help="0: back to back")
    parser.add_argument("--agent-duration", type=float, default=30.0)
    parser.add_argument("--agent-concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    _raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_main(args))
    return uvloop.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
