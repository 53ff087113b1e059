"""Usage ingestion and one hour of cost allocation at fleet scale (issue 29).

No API server is needed: each simulated cluster's answers (nodes, pods with owners,
requests and start times, metrics.k8s.io pod usage, namespaces, volumes, services) are
encoded JSON served by `ServedApi`, which stands in for the Kubernetes client's transport
only. Everything above it is the product's: `kube.client.get_json` (decoding), the
collector (`kube.inventory.collect`: requests per row, controllers, labels, usage joined
per pod, the running minutes of recent pods), the inventories stored as collection
stores them, then `cost_compute` for one hour on `workers` processes, each taking its
share of the clusters (as the compute task's shards would).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.db import connections
from django.utils import timezone

from benchmarks.results import Row
from clusters.models import Cluster, ClusterInventory
from costs.models import CostAllocation, CostSnapshot
from costs.services import cost_compute
from kube.inventory import collect

INTERVAL_S = 600  # beat computes the running hour every 10 minutes
MIB = 2**20
NAMESPACES = ("default", "shop", "payments", "monitoring")
# The instance type of each provider's nodes (list prices exist for each), and its size.
INSTANCE = {
    "aws": ("m5.xlarge", 4, 16),
    "gcp": ("n2-standard-4", 4, 16),
    "azure": ("Standard_D4s_v3", 4, 16),
    "onprem": ("bare-metal-16", 16, 64),
}
PROFILES = 8
STORE_BATCH = 500


class _Answer:
    def __init__(self, data: bytes) -> None:
        self.status, self._data = 200, data

    def read(self) -> bytes:
        return self._data


class ServedApi:
    """What `kube.client.request_json` uses of a kubernetes ApiClient, answering GETs
    from encoded bodies by path (the query, e.g. `?limit=500`, is ignored)."""

    EMPTY = b'{"items": [], "metadata": {}}'

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.default_headers: dict[str, str] = {}
        self.configuration = SimpleNamespace(host="https://simulated")
        self.rest_client = SimpleNamespace(request=self._request)
        self._answers = answers

    def update_params_for_auth(self, *_: Any) -> None:
        return None

    def _request(self, method: str, url: str, **_: Any) -> _Answer:
        return _Answer(self._answers.get(urlsplit(url).path, self.EMPTY))


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod(
    index: int, namespace: str, app: str, node: str, started: datetime, **status: Any
) -> dict[str, Any]:
    template = f"{zlib.crc32(app.encode()):08x}"
    return {
        "metadata": {
            "name": f"{app}-{template}-{index}",
            "namespace": namespace,
            "labels": {"app": app, "pod-template-hash": template, "tier": "backend"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": f"{app}-{template}", "controller": True}
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "app",
                    "resources": {
                        "requests": {
                            "cpu": f"{100 + 50 * (index % 6)}m",
                            "memory": f"{128 + 64 * (index % 7)}Mi",
                        }
                    },
                }
            ],
        },
        "status": {"phase": "Running", "startTime": _time(started), **status},
    }


def answers(profile: int, provider: str, region: str, now: datetime) -> dict[str, bytes]:
    """One simulated cluster: 2-5 nodes, 12-40 pods in 4 namespaces (2 Deployments each),
    one pod in 6 started 20 minutes ago, a Job pod that ended 10 minutes ago, usage of
    every running pod (50-125 % of its CPU request, 80 % of memory), a bound volume and a
    LoadBalancer Service."""
    instance, cores, gib = INSTANCE.get(provider, INSTANCE["onprem"])
    nodes = [f"node-{n}" for n in range(2 + profile % 4)]
    pods = []
    for index in range(12 + 4 * profile):
        namespace = NAMESPACES[index % len(NAMESPACES)]
        started = now - (timedelta(minutes=20) if index % 6 == 5 else timedelta(days=3))
        app = f"{namespace}-app-{index % 8 // 4}"
        pods.append(_pod(index, namespace, app, nodes[index % len(nodes)], started))
    job = _pod(99, "default", "report", nodes[0], now - timedelta(minutes=40))
    job["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "report", "controller": True}]
    job["status"] = {
        "phase": "Succeeded",
        "startTime": _time(now - timedelta(minutes=40)),
        "containerStatuses": [
            {"state": {"terminated": {"finishedAt": _time(now - timedelta(minutes=10))}}}
        ],
    }
    metrics = [
        {
            "metadata": pod["metadata"] | {"labels": {}},
            "containers": [
                {
                    "name": "app",
                    "usage": {
                        "cpu": f"{(100 + 50 * (i % 6)) * (50 + 25 * (i % 4)) * 10_000}n",
                        "memory": f"{(128 + 64 * (i % 7)) * 1024 * 8 // 10}Ki",
                    },
                }
            ],
        }
        for i, pod in enumerate(pods)
    ]
    capacity = {"cpu": str(cores), "memory": f"{gib}Gi", "pods": "110"}
    node_items = [
        {
            "metadata": {
                "name": name,
                "labels": {
                    "node.kubernetes.io/instance-type": instance,
                    "topology.kubernetes.io/region": region,
                },
            },
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            },
        }
        for name in nodes
    ]
    volume = {
        "metadata": {"name": "data", "namespace": "shop"},
        "spec": {"storageClassName": "", "resources": {"requests": {"storage": "20Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "20Gi"}},
    }
    balancer = {
        "metadata": {"name": "front", "namespace": "shop"},
        "spec": {"type": "LoadBalancer"},
    }
    lists = {
        "/api/v1/nodes": node_items,
        "/api/v1/pods": [*pods, job],
        "/api/v1/namespaces": [
            {"metadata": {"name": ns, "labels": {"team": ns}}, "status": {"phase": "Active"}}
            for ns in NAMESPACES
        ],
        "/api/v1/persistentvolumeclaims": [volume],
        "/api/v1/services": [balancer],
        "/apis/metrics.k8s.io/v1beta1/pods": metrics,
    }
    served = {path: orjson.dumps({"items": items, "metadata": {}}) for path, items in lists.items()}
    served["/version/"] = b'{"gitVersion": "v1.29.4"}'
    served["/apis"] = orjson.dumps({"groups": [{"name": "apps"}, {"name": "metrics.k8s.io"}]})
    return served


def _ingest(clusters: list[Cluster], now: datetime) -> tuple[float, float, int]:
    """Collect every cluster's inventory with usage and store them: (wall s, CPU s, pods
    with usage)."""
    served: dict[tuple[int, str, str], dict[str, bytes]] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    measured = 0
    batch: list[ClusterInventory] = []
    for index, cluster in enumerate(clusters):
        key = (index % PROFILES, cluster.provider, cluster.region)
        if key not in served:
            served[key] = answers(*key, now)
        inventory = collect(ServedApi(served[key]), full=True)
        measured += sum(1 for a in inventory.allocations if "cpu_usage_millis" in a)
        batch.append(
            ClusterInventory(cluster_id=cluster.pk, collected_at=now, data=inventory.as_json())
        )
        if len(batch) == STORE_BATCH or index == len(clusters) - 1:
            ClusterInventory.objects.bulk_create(
                batch,
                update_conflicts=True,
                unique_fields=["cluster"],
                update_fields=["collected_at", "data"],
            )
            batch = []
    return time.perf_counter() - wall, time.process_time() - cpu, measured


def _compute_share(hour: datetime, ids: list[int]) -> None:
    connections.close_all()  # this process's own connection
    cost_compute(hour=hour, cluster_ids=ids)
    os._exit(0)


def _compute(hour: datetime, ids: list[int], workers: int) -> float:
    """One hour for `ids` on `workers` processes (forked, each its own connection)."""
    connections.close_all()
    context = multiprocessing.get_context("fork")
    shares = [ids[n::workers] for n in range(workers)]
    started = time.perf_counter()
    processes = [context.Process(target=_compute_share, args=(hour, s)) for s in shares]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    if any(process.exitcode for process in processes):
        raise RuntimeError("a cost_compute worker failed")
    return seconds


def run(*, cluster_ids: list[int], workers: int = 2) -> list[Row]:
    clusters = list(Cluster.objects.filter(pk__in=cluster_ids).order_by("pk"))
    ids = [c.pk for c in clusters]
    now = timezone.now().astimezone(UTC).replace(microsecond=0)
    hour = now.replace(minute=0, second=0)
    ingest_s, ingest_cpu, measured = _ingest(clusters, now)
    CostAllocation.objects.filter(hour=hour, cluster_id__in=ids).delete()
    # The hour's first computation on one process (as cost_compute_task runs it), then
    # its recomputation ten minutes later (every row replaced) on `workers` processes.
    single_s = _compute(hour, ids, 1)
    compute_s = _compute(hour, ids, workers)
    rows = CostAllocation.objects.filter(hour=hour, cluster_id__in=ids).count()
    CostAllocation.objects.filter(hour=hour, cluster_id__in=ids).delete()
    CostSnapshot.objects.filter(hour=hour, cluster_id__in=ids).delete()
    count = len(clusters)
    return [
        Row(
            "cost-usage",
            f"usage ingestion: {count} clusters collected with metrics.k8s.io usage "
            "(simulated answers, the product's collector) and stored",
            f"{ingest_s:.1f} s, {1000 * ingest_cpu / count:.2f} ms CPU per cluster, "
            f"{measured} rows with usage",
            value=ingest_s,
            detail={"cpu_s": ingest_cpu, "clusters": count},
        ),
        _interval_row(f"cost_compute of one hour for {count} clusters, 1 process", single_s, rows),
        _interval_row(
            f"cost_compute of the same hour again (rows replaced), {workers} processes",
            compute_s,
            rows,
        ),
    ]


def _interval_row(what: str, seconds: float, rows: int) -> Row:
    share = seconds / INTERVAL_S
    return Row(
        "cost-usage",
        what,
        f"{seconds:.1f} s = {100 * share:.0f}% of the {INTERVAL_S} s interval ({rows} rows)",
        target=f"< 50% of {INTERVAL_S} s",
        ok=share < 0.5,
        value=100 * share,
        detail={"seconds": seconds, "rows": rows},
    )
