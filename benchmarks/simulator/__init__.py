"""A fleet simulator in one asyncio process (issue 9, section 1).

* N simulated member clusters answer the part of the Kubernetes API Keelson calls
  (`kube/inventory.py`: /version, nodes, namespaces, deployments, statefulsets,
  daemonsets, pods, persistentvolumeclaims, services, warning events, metrics.k8s.io pod
  usage; `kube/access.py`: SelfSubjectAccessReview) over HTTPS with a
  self-signed CA, all on ONE port, cluster `n` under the prefix
  `https://127.0.0.1:PORT/c/<n>` with its own bearer token.
* They also answer what a policy sweep reads (`policies/kube.py`): discovery (`/api`,
  `/apis`, group versions) and lists of replicasets, jobs, cronjobs, services and network
  policies, with workloads owned as in a real cluster (Deployment -> ReplicaSet -> Pod).
  Every LEGACY_EVERY-th cluster is a 1.20 (CronJob served as batch/v1beta1 only), and
  policy violations are planted every PLANTED[policy]-th cluster (see `Variant`).
* A cluster can be killed (its connections reset, or left hanging so the client times
  out) and revived by a control call: `GET /control/kill?ids=3,7&mode=reset|hang`,
  `GET /control/revive?ids=3,7`, `GET /control/stats`; `GET /control/latency?ms=50` delays
  every cluster's answers as a fleet in other regions would.
* M pull-mode agents heartbeat to the hub's agent API (`/api/v1/agent/heartbeat/`),
  either each at an interval or back to back (to find what the hub absorbs).

Run `python -m benchmarks.simulator --clusters 10000 --port 18443` (it prints one JSON
line with its URL and CA path once it listens), or use `Simulator` from the benchmarks.
The HTTP server is a small HTTP/1.1 keep-alive server on asyncio streams: responses are
rendered once per cluster profile and served as bytes, so the simulator costs little
next to the hub it measures.

Modules: `shape` (profiles, variants, planted violations), `tls` (CA, certificate,
tokens), `k8s` (object building blocks), `workloads` and `clusters` (what a cluster
serves), `discovery`, `server` (`Simulator`), `agents` (pull agents), `__main__`.
"""

from benchmarks.simulator.agents import AgentStats, run_agents
from benchmarks.simulator.clusters import agent_inventory, cluster_objects, pod_metrics
from benchmarks.simulator.discovery import discovery
from benchmarks.simulator.server import Simulator, Stats
from benchmarks.simulator.shape import (
    DEGRADED_EVERY,
    INSTANCE_TYPES,
    KUBE_VERSION,
    LEGACY_EVERY,
    LEGACY_VERSION,
    PLANTED,
    PROFILES,
    Variant,
)
from benchmarks.simulator.tls import TLSFiles, cluster_token, cluster_url, ensure_tls
from benchmarks.simulator.workloads import policy_objects

__all__ = [
    "DEGRADED_EVERY",
    "INSTANCE_TYPES",
    "KUBE_VERSION",
    "LEGACY_EVERY",
    "LEGACY_VERSION",
    "PLANTED",
    "PROFILES",
    "AgentStats",
    "Simulator",
    "Stats",
    "TLSFiles",
    "Variant",
    "agent_inventory",
    "cluster_objects",
    "cluster_token",
    "cluster_url",
    "discovery",
    "ensure_tls",
    "pod_metrics",
    "policy_objects",
    "run_agents",
]
