"""One local cluster as a long-lived process tree: `python -m localkube serve DIR`.

The `local` provider starts this detached from the Celery worker, so a cluster outlives
the task that created it (and a worker restart). DIR/spec.json says what to run: fixed
ports and token (so the hub's stored credential keeps working across restarts) and the
simulated nodes. The supervisor writes DIR/state.json once the API server is ready,
re-reads spec.json every few seconds to add, remove or change nodes (scaling, a node
pool's rolling replacement), and on SIGTERM
stops everything; its children die with it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

from localkube import procs
from localkube.binaries import find_binaries
from localkube.controlplane import ControlPlane, Etcd
from localkube.simulator import KUBELET_VERSION, NodeSimulator, NodeSpec

logger = logging.getLogger(__name__)

SPEC = "spec.json"
STATE = "state.json"
PID = "supervisor.pid"


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(data, file, indent=2)
    temporary.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def new_spec(name: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Ports and token chosen once, for the cluster's whole life."""
    return {
        "name": name,
        "etcd_port": procs.free_port(),
        "etcd_peer_port": procs.free_port(),
        "apiserver_port": procs.free_port(),
        "token": secrets.token_urlsafe(32),
        "nodes": nodes,
    }


def supervisor_pid(directory: Path) -> int | None:
    try:
        pid = int((directory / PID).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if procs.pid_alive(pid) else None


def _node_specs(spec: dict[str, Any]) -> dict[str, NodeSpec]:
    return {
        node["name"]: NodeSpec(
            name=node["name"],
            cpu=str(node["cpu"]),
            memory=str(node["memory"]),
            gpu=str(node.get("gpu", 0)),
            labels=dict(node.get("labels", {})),
            kubelet_version=str(node.get("kubelet_version") or KUBELET_VERSION),
            image=str(node.get("image") or ""),
        )
        for node in spec["nodes"]
    }


def apply_nodes(
    simulator: NodeSimulator, nodes: dict[str, NodeSpec], wanted: dict[str, NodeSpec]
) -> None:
    """Bring the simulated nodes to `wanted`: remove, add, and re-register changed ones."""
    for name in set(nodes) - set(wanted):
        simulator.remove_node(name)
    for name, spec in wanted.items():
        if nodes.get(name) != spec:
            simulator.add_node(spec)


def serve(directory: Path) -> int:
    spec = read_json(directory / SPEC)
    if spec is None:
        raise SystemExit(f"no readable {SPEC} in {directory}")
    (directory / PID).write_text(str(os.getpid()))
    (directory / STATE).unlink(missing_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    binaries = find_binaries()
    etcd = Etcd(
        binary=binaries.etcd,
        data_dir=directory / "etcd",
        client_port=spec["etcd_port"],
        peer_port=spec["etcd_peer_port"],
    )
    plane = ControlPlane(
        name=spec["name"],
        binaries=binaries,
        etcd_url=f"http://127.0.0.1:{spec['etcd_port']}",
        directory=directory / "plane",
        port=spec["apiserver_port"],
        token=spec["token"],
    )
    simulator: NodeSimulator | None = None
    try:
        etcd.start()
        plane.start()
        nodes = _node_specs(spec)
        simulator = NodeSimulator(plane.api_client(), list(nodes.values()))
        simulator.start()
        write_json(
            directory / STATE,
            {"pid": os.getpid(), "server": plane.server, "ready": True, "at": time.time()},
        )
        while not stop.wait(2.0):
            latest = read_json(directory / SPEC)
            if latest is None:
                continue
            wanted = _node_specs(latest)
            try:
                apply_nodes(simulator, nodes, wanted)
            except Exception:  # the API server may be settling: the next read tries again
                logger.warning("could not apply the node list; trying again", exc_info=True)
                continue
            nodes = wanted
    finally:
        (directory / STATE).unlink(missing_ok=True)
        if simulator is not None:
            simulator.stop()
        plane.stop()
        etcd.stop()
        (directory / PID).unlink(missing_ok=True)
    return 0
