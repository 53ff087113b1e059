"""Several local clusters sharing one etcd: the test environment and the `local` provider."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from localkube.binaries import KubeBinaries, find_binaries
from localkube.controlplane import ControlPlane, Etcd, LocalKubeError
from localkube.metrics import MetricsServer
from localkube.simulator import NodeSimulator, NodeSpec

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")


@dataclass
class LocalCluster:
    name: str
    control_plane: ControlPlane
    simulator: NodeSimulator | None
    metrics: MetricsServer | None = None

    @property
    def kubeconfig_path(self) -> Path:
        return self.control_plane.kubeconfig_path

    def stop(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        if self.simulator is not None:
            self.simulator.stop()
        self.control_plane.stop()


class LocalKubeEnv:
    """Start and stop clusters under `directory`, all on one etcd."""

    def __init__(
        self,
        directory: Path,
        *,
        binaries: KubeBinaries | None = None,
        die_with_parent: bool = True,
        node_monitor_grace_period: str = "40s",
    ) -> None:
        self.directory = directory
        self.binaries = binaries or find_binaries()
        self.die_with_parent = die_with_parent
        self.node_monitor_grace_period = node_monitor_grace_period
        self.etcd: Etcd | None = None
        self.clusters: dict[str, LocalCluster] = {}

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.etcd = Etcd(
            binary=self.binaries.etcd,
            data_dir=self.directory / "etcd",
            die_with_parent=self.die_with_parent,
        )
        self.etcd.start()

    def start_cluster(
        self,
        name: str,
        *,
        nodes: list[NodeSpec] | None = None,
        controllers: bool = True,
        simulate: bool = True,
        metrics: bool = False,
    ) -> LocalCluster:
        """Start a control plane named `name` with `nodes` simulated (two 4-CPU nodes when
        not given). Blocks until the API server is ready (typically 5 to 10 s). `metrics`
        also serves `metrics.k8s.io` (see `metrics.MetricsServer`, set its usage on
        `cluster.metrics`)."""
        if self.etcd is None:
            raise LocalKubeError("start() the environment before its clusters")
        if not _NAME.match(name):
            raise LocalKubeError(f"invalid cluster name {name!r}: use a DNS label")
        if name in self.clusters:
            raise LocalKubeError(f"cluster {name!r} is already running")
        control_plane = ControlPlane(
            name=name,
            binaries=self.binaries,
            etcd_url=self.etcd.url,
            directory=self.directory / "clusters" / name,
            controllers=controllers,
            die_with_parent=self.die_with_parent,
            node_monitor_grace_period=self.node_monitor_grace_period,
        )
        try:
            control_plane.start()
        except Exception:
            control_plane.stop()
            raise
        simulator = None
        if simulate:
            specs = nodes if nodes is not None else default_nodes(name)
            simulator = NodeSimulator(control_plane.api_client(), specs)
            simulator.start()
        cluster = LocalCluster(name=name, control_plane=control_plane, simulator=simulator)
        if metrics:
            cluster.metrics = MetricsServer(control_plane.api_client())
            try:
                cluster.metrics.start()
            except Exception:
                cluster.stop()
                raise
        self.clusters[name] = cluster
        return cluster

    def stop_cluster(self, name: str, *, remove_data: bool = False) -> None:
        cluster = self.clusters.pop(name)
        cluster.stop()
        if remove_data:
            shutil.rmtree(cluster.control_plane.directory, ignore_errors=True)

    def stop(self) -> None:
        for name in list(self.clusters):
            self.stop_cluster(name)
        if self.etcd is not None:
            self.etcd.stop()


def default_nodes(cluster: str, count: int = 2) -> list[NodeSpec]:
    return [
        NodeSpec(
            name=f"{cluster}-node-{index}",
            labels={
                "node.kubernetes.io/instance-type": "m5.xlarge",
                "topology.kubernetes.io/region": "local",
                "topology.kubernetes.io/zone": f"local-{'abc'[index % 3]}",
            },
        )
        for index in range(count)
    ]
