"""The web server: uvicorn worker processes, each on its own listening socket.

Under `uvicorn --workers N` the processes share one listening socket, and asyncio accepts
every connection waiting when it wakes: a burst of keep-alive connections (a proxy's pool,
agents starting together) lands on whichever process woke first, and stays there. Measured:
32 keep-alive clients on 2 workers put one at 93 % CPU and the other at 0 %. Here each
worker binds its own socket with SO_REUSEPORT and the kernel spreads new connections
across them by their addresses, as nginx's `reuseport` does.

`python -m fleet.web --host H --port P --workers N` runs N workers and restarts one that
dies (SIGTERM stops them all, each finishing its requests for up to
`--timeout-graceful-shutdown` seconds); with one worker, or without SO_REUSEPORT, it is
plain uvicorn.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

APP = "fleet.asgi:application"
BACKLOG = 2048  # as uvicorn
# A worker that dies is started again; one that keeps dying within this many seconds of
# its start stops the server (a broken settings file, say), rather than spinning.
QUICK_DEATH_SECONDS = 10.0
QUICK_DEATHS = 5

logger = logging.getLogger("keelson.web")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fleet.web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=10)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # a worker
    parser.add_argument("--parent", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) that other workers may bind too."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "lifespan": "off",
        "timeout_graceful_shutdown": args.timeout_graceful_shutdown,
        "log_level": args.log_level,
        "access_log": args.access_log,
    }


def serve(args: argparse.Namespace, sock: socket.socket) -> None:
    """One worker: uvicorn on its own socket, ending when the supervisor does."""
    import uvicorn

    _end_with_parent(args.parent)
    uvicorn.Server(uvicorn.Config(APP, **_options(args))).run(sockets=[sock])


def _end_with_parent(parent: int) -> None:
    """SIGTERM this worker when the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent and os.getppid() != parent:  # it died before prctl
        raise SystemExit(0)


_PR_SET_PDEATHSIG = 1


def _worker_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "fleet.web", "--serve", "--parent", str(os.getpid())]
    command += ["--host", args.host]
    command += ["--port", str(args.port), "--log-level", args.log_level]
    command += ["--timeout-graceful-shutdown", str(args.timeout_graceful_shutdown)]
    return command + ([] if args.access_log else ["--no-access-log"])


def supervise(args: argparse.Namespace) -> int:
    """Run `args.workers` workers until SIGTERM or SIGINT; restart one that dies."""
    # Fail here, with one clear message, when the port is taken (by a socket without
    # SO_REUSEPORT: another program, or a server already running).
    reuseport_socket(args.host, args.port).close()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    workers: list[tuple[subprocess.Popen[bytes], float]] = [
        (subprocess.Popen(_worker_command(args)), time.monotonic()) for _ in range(args.workers)
    ]
    quick_deaths = 0
    code = 0
    while not stopping.wait(0.5):
        for index, (process, started) in enumerate(workers):
            if process.poll() is None:
                continue
            quick_deaths = (
                quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH_SECONDS else 0
            )
            if quick_deaths >= QUICK_DEATHS:
                logger.error(
                    "web workers keep exiting (last code %s); stopping", process.returncode
                )
                stopping.set()
                code = 1
                break
            logger.warning(
                "web worker %s exited with %s; starting another", process.pid, process.returncode
            )
            workers[index] = (subprocess.Popen(_worker_command(args)), time.monotonic())
    for process, _ in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + args.timeout_graceful_shutdown + 5
    for process, _ in workers:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    if args.serve:
        serve(args, reuseport_socket(args.host, args.port))
        return 0
    if args.workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        import uvicorn

        uvicorn.run(APP, workers=args.workers, **_options(args))
        return 0
    try:
        return supervise(args)
    except OSError as error:
        logger.error("cannot listen on %s:%s: %s", args.host, args.port, error.strerror or error)
        return 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
