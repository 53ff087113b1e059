"""Processes the benchmarks start (simulator, Celery workers, uvicorn) and measure."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import psutil

from benchmarks.env import BENCH_DIR, ROOT, child_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(name: str) -> IO[bytes]:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    return (BENCH_DIR / f"{name}.log").open("ab")


def stop(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class SimulatorProcess:
    """`python -m benchmarks.simulator` in its own process (its own core, its own GIL)."""

    def __init__(self, clusters: int, *, extra: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.simulator", "--clusters", str(clusters)]
            + (extra or []),
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=_log("simulator"),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator did not start; see var/bench/simulator.log")
        info = json.loads(line)
        self.port = int(info["port"])
        self.ca = str(info["ca"])
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode().strip())

    def control(self, path: str) -> dict[str, Any]:
        import ssl

        context = ssl.create_default_context(cafile=self.ca)
        url = f"https://127.0.0.1:{self.port}/control/{path}"
        with urllib.request.urlopen(url, context=context, timeout=10) as reply:
            return dict(json.loads(reply.read()))

    def wait(self, timeout: float) -> None:
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)

    def stop(self) -> None:
        stop(self.process)


def start_workers(count: int, *, queues: str = "clusters") -> list[subprocess.Popen[bytes]]:
    """`count` real Celery worker processes (solo pool: one process each, so its CPU and
    memory are the worker's) on the benchmark broker and database."""
    from core.celery import app

    workers = []
    names = []
    for index in range(count):
        name = f"bench{index}-{int(time.time())}"
        names.append(f"{name}@{socket.gethostname()}")
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "fleet",
                    "worker",
                    "-l",
                    "warning",
                    "-Q",
                    queues,
                    "-P",
                    "solo",
                    "-n",
                    f"{name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=ROOT,
                env=child_env(),
                stdout=_log("worker"),
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 90
    waiting = set(names)
    while waiting and time.monotonic() < deadline:
        for worker in workers:
            if worker.poll() is not None:
                raise RuntimeError("a Celery worker exited at start; see var/bench/worker.log")
        replies = app.control.ping(destination=sorted(waiting), timeout=1) or []
        for reply in replies:
            waiting -= set(reply)
    if waiting:
        for worker in workers:
            stop(worker)
        raise RuntimeError("Celery workers did not answer a ping within 90 s")
    return workers


class Uvicorn:
    """The hub's web: one uvicorn process, or `workers` processes under uvicorn's own
    supervisor (as `make run` starts it: fleet/launcher.py)."""

    def __init__(self, workers: int = 1) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fleet.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
                *(["--workers", str(workers)] if workers > 1 else []),
            ],
            cwd=ROOT,
            env=child_env(),
            stdout=_log("uvicorn"),
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("uvicorn exited; see var/bench/uvicorn.log")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        stop(self.process)
        raise RuntimeError("uvicorn did not answer /healthz within 60 s")

    def stop(self) -> None:
        stop(self.process)

    def serving(self) -> dict[str, int]:
        """The processes that serve requests (the workers, under a supervisor), by name."""
        workers = [
            child
            for child in psutil.Process(self.process.pid).children()
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        if not workers:
            return {"uvicorn": self.process.pid}
        return {f"uvicorn-{n}": worker.pid for n, worker in enumerate(workers, 1)}


class Sampler:
    """CPU (% of one core) and RSS of processes, sampled every `period` seconds in a
    thread; `cpu_seconds` is exact (from the kernel's counters)."""

    def __init__(self, processes: dict[str, int], period: float = 1.0) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in processes.items()}
        self.period = period
        self.rss_max: dict[str, int] = dict.fromkeys(self.procs, 0)
        self._cpu_start: dict[str, float] = {}
        self._cpu_end: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = self.finished = 0.0

    def _cpu(self, proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    def start(self) -> Sampler:
        self.started = time.monotonic()
        self._cpu_start = {name: self._cpu(p) for name, p in self.procs.items()}
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for name, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.rss_max[name] = max(self.rss_max[name], proc.memory_info().rss)

    def stop(self) -> Sampler:
        self._stop.set()
        self._thread.join()
        self.finished = time.monotonic()
        for name, proc in self.procs.items():
            try:
                self._cpu_end[name] = self._cpu(proc)
                self.rss_max[name] = max(self.rss_max[name], proc.memory_info().rss)
            except psutil.Error:
                self._cpu_end[name] = self._cpu_start[name]
        return self

    @property
    def wall(self) -> float:
        return max(self.finished - self.started, 1e-9)

    def cpu_seconds(self, name: str) -> float:
        return self._cpu_end[name] - self._cpu_start[name]

    def cpu_percent(self, name: str) -> float:
        """Percent of one core over the sampled window."""
        return 100 * self.cpu_seconds(name) / self.wall


def write_tokens(tokens: list[str]) -> Path:
    path = BENCH_DIR / "agent-tokens.txt"
    path.write_text("\n".join(tokens) + "\n")
    path.chmod(0o600)
    return path
