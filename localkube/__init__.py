"""Real Kubernetes control planes on this host, with simulated nodes.

Backs the test environment and the `local` provider: one etcd shared by several
kube-apiservers (one key prefix each), each with a controller-manager and a scheduler,
and a node simulator standing in for kubelets (there is no container runtime here).
See ../shared/KUBERNETES_TESTENV.md.
"""

from localkube.binaries import KubeBinaries, KubeBinariesMissing, find_binaries
from localkube.controlplane import ControlPlane, Etcd, LocalKubeError
from localkube.env import LocalKubeEnv
from localkube.simulator import NodeSimulator, NodeSpec

__all__ = [
    "ControlPlane",
    "Etcd",
    "KubeBinaries",
    "KubeBinariesMissing",
    "LocalKubeEnv",
    "LocalKubeError",
    "NodeSimulator",
    "NodeSpec",
    "find_binaries",
]
