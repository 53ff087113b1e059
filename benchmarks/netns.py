"""Two hub "hosts" on this machine: Linux network namespaces joined to the root namespace by
veth pairs, each running Keelson's web (uvicorn, as `make run`) and Celery workers. Used by
the scale-out tests (tests/hub/) and the `hosts` benchmark row.

Addressing: host i has the /30 10.231.x.y; the root side of its veth is .1, the namespace
side .2. PostgreSQL, Redis and RabbitMQ listen on 127.0.0.1 only and are left as they are: a
forwarder in the root namespace (benchmarks/forward.py) listens on each host-side address and
passes connections on to them, so a host reaches them only over its veth. The
kube-apiservers' (and the benchmark simulator's) URLs and certificates name 127.0.0.1: for
those ports (`loopback_ports`) a forwarder inside each namespace listens on its own loopback
and passes on to the host-side address.

Names carry the test process's id (`khub-<pid>-<host>`): a run that crashed leaves
namespaces whose process is gone, and the next run deletes them (with whatever still runs
in them) before it starts. Needs root (CAP_NET_ADMIN) and `ip`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
PREFIX = "khub"
STALE = re.compile(rf"^{PREFIX}-(\d+)-[a-z]$")
WEB_PORT = 8000
QUEUES = "default,clusters,provisioning,placement,policies,reports,costs"


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_pids(netns: str) -> list[int]:
    return [int(p) for p in ip("netns", "pids", netns, check=False).split()]


def delete_namespace(netns: str) -> None:
    """Kill what runs in `netns`, then delete it (its veth pair goes with it)."""
    for _ in range(50):
        pids = namespace_pids(netns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    ip("netns", "del", netns, check=False)


def remove_stale() -> list[str]:
    """Delete the namespaces of earlier runs whose test process is gone (or had the id
    this process has now)."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = STALE.match(name)
        if match and (int(match.group(1)) == os.getpid() or not _alive(int(match.group(1)))):
            delete_namespace(name)
            removed.append(name)
    return removed


def subnet(pid: int, index: int) -> tuple[str, str]:
    """(host-side, namespace-side) addresses of the /30 of host `index` of run `pid`."""
    base = ((pid % 8000) * 2 + index) * 4  # 10.231.0.0/16 holds 16,384 of them
    head = f"10.231.{base >> 8}"
    return f"{head}.{(base & 255) + 1}", f"{head}.{(base & 255) + 2}"


def _swap_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{host}:{parts.port}" if auth else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Host:
    """One namespace: its addresses, and the processes started in it."""

    name: str
    netns: str
    gateway: str  # root side of the veth (where the services are forwarded)
    address: str  # namespace side
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def web_url(self) -> str:
        return f"http://{self.address}:{WEB_PORT}"

    @property
    def node(self) -> str:
        """The Celery worker's node name prefix (`node@hostname`)."""
        return f"host-{self.name}"

    def start(self, role: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{self.name}-{role}.log").open("ab")
        self.processes[role] = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *command],
            cwd=REPO,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def start_web(self) -> None:
        """uvicorn on the namespace address, as fleet/webserver.py's command line."""
        from fleet.webserver import web_command

        multiproc = self.logs / f"{self.name}-prometheus"
        multiproc.mkdir(exist_ok=True)
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
        bin_dir = Path(sys.executable).parent
        self.start(
            "web", web_command(bin_dir, host=self.address, port=WEB_PORT, workers=1, env=env), env
        )

    def start_worker(
        self,
        role: str = "worker",
        *,
        concurrency: int = 1,
        queues: str = QUEUES,
        loglevel: str = "info",
        extra: Sequence[str] = (),
    ) -> str:
        """`celery -A fleet worker`, as the launcher runs it; its node name."""
        node = self.node if role == "worker" else f"{self.node}-{role}"
        command = [sys.executable, "-m", "celery", "-A", "fleet", "worker", "-l", loglevel]
        command += ["-Q", queues, "--concurrency", str(concurrency), "-n", f"{node}@%h", *extra]
        self.start(role, command)
        return f"{node}@{socket.gethostname()}"

    def run(self, command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `command` in the namespace to its end."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *command],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def kill(self) -> None:
        """SIGKILL every process of the host at once (the machine is lost)."""
        for pid in namespace_pids(self.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()

    def wait_web(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            web = self.processes["web"]
            assert web.poll() is None, f"web of host {self.name} exited; see {self.logs}"
            try:
                with urllib.request.urlopen(f"{self.web_url}/healthz", timeout=2):  # noqa: S310
                    return
            except OSError as error:
                if time.monotonic() > deadline:
                    message = f"web of host {self.name} not up within {timeout} s"
                    raise AssertionError(message) from error
                time.sleep(0.3)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
            for p in sorted(self.logs.glob(f"{self.name}-*.log"))
        )


def _spawn_forwarder(prefix: list[str], routes: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "benchmarks.forward", *routes],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=out,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != b"ready":
        process.kill()
        raise RuntimeError(f"forwarder did not start ({routes}); see {log}")
    return process


@contextlib.contextmanager
def two_hosts(
    base_env: dict[str, str], logs: Path, *, loopback_ports: Sequence[int] = ()
) -> Iterator[list[Host]]:
    """Hosts "a" and "b" with their networking and forwarders (no Keelson process yet)."""
    remove_stale()
    pid = os.getpid()
    services = [
        urlsplit(base_env[name]) for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    ]
    hosts: list[Host] = []
    forwarders: list[subprocess.Popen[bytes]] = []
    try:
        routes = []
        for index, name in enumerate("ab"):
            gateway, address = subnet(pid, index)
            netns, veth = f"{PREFIX}-{pid}-{name}", f"kh{pid}{name}"
            ip("netns", "add", netns)
            host = Host(name=name, netns=netns, gateway=gateway, address=address, logs=logs)
            hosts.append(host)
            ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}n", "netns", netns)
            ip("addr", "add", f"{gateway}/30", "dev", veth)
            ip("link", "set", veth, "up")
            inside = ["-n", netns]
            ip(*inside, "addr", "add", f"{address}/30", "dev", f"{veth}n")
            ip(*inside, "link", "set", f"{veth}n", "up")
            ip(*inside, "link", "set", "lo", "up")
            ip(*inside, "route", "add", "default", "via", gateway)
            for service in services:
                target = f"{service.hostname}:{service.port}"
                routes.append(f"{gateway}:{service.port}={target}")
            routes += [f"{gateway}:{port}=127.0.0.1:{port}" for port in loopback_ports]
            env = {
                **base_env,
                "DATABASE_URL": _swap_host(base_env["DATABASE_URL"], gateway),
                "REDIS_URL": _swap_host(base_env["REDIS_URL"], gateway),
                "CELERY_BROKER_URL": _swap_host(base_env["CELERY_BROKER_URL"], gateway),
                "ALLOWED_HOSTS": f"{address},localhost,127.0.0.1",
            }
            env.pop("CELERY_RESULT_BACKEND", None)  # follows REDIS_URL
            host.env = env
        routes = list(dict.fromkeys(routes))  # a loopback port may be a service port
        forwarders.append(_spawn_forwarder([], routes, logs / "forward-root.log"))
        for host in hosts:
            if loopback_ports:
                inner = [f"127.0.0.1:{port}={host.gateway}:{port}" for port in loopback_ports]
                prefix = ["ip", "netns", "exec", host.netns]
                log = logs / f"{host.name}-forward.log"
                forwarders.append(_spawn_forwarder(prefix, inner, log))
        yield hosts
    finally:
        for host in hosts:
            host.stop()
        for process in forwarders:
            if process.poll() is None:
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        for host in hosts:
            delete_namespace(host.netns)
