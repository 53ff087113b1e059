"""The policy reader against a real kube-apiserver (v1.20): only the discovery policies
need, shared through the cache per cluster and server version, dropped when stale; and no
discovery file left on disk by any dynamic client."""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import cache
from kubernetes import client as k8s

from kube import discovery
from kube.apply import apply_manifest
from kube.client import ClusterConnectError, ConnectionSpec, build_api_client
from localkube.env import LocalCluster
from policies.kube import ClusterReader, ServedKind

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def _api(kube_cluster: LocalCluster) -> k8s.ApiClient:
    return kube_cluster.control_plane.api_client()


def test_kinds_resolve_to_the_version_the_cluster_serves(kube_cluster: LocalCluster) -> None:
    reader = ClusterReader(_api(kube_cluster))
    served = reader.resolve(
        [("batch", "CronJob"), ("apps", "Deployment"), ("", "Pod"), ("x.io", "Nope")]
    )
    assert served[("batch", "CronJob")] == ServedKind("batch/v1beta1", "cronjobs", True)
    assert served[("apps", "Deployment")] == ServedKind("apps/v1", "deployments", True)
    assert served[("", "Pod")] == ServedKind("v1", "pods", True)
    assert served[("x.io", "Nope")] is None
    assert reader.list("x.io", "Nope") == []
    names = {ns["metadata"]["name"] for ns in reader.list("", "Namespace")}
    assert {"default", "kube-system"} <= names
    assert all(
        ns["kind"] == "Namespace" and ns["apiVersion"] == "v1"
        for ns in reader.list("", "Namespace")
    )


def test_discovery_is_shared_through_the_cache(kube_cluster: LocalCluster) -> None:
    key = f"test-{uuid.uuid4().hex}"
    ClusterReader(_api(kube_cluster), cache_key=key).resolve([("apps", "Deployment"), ("", "Pod")])
    discovery.local_copy.drop(f"{discovery.CACHE_PREFIX}{key}")  # as in another worker process
    # a reader that cannot reach anything still knows where the kinds are
    nowhere = ClusterReader(
        build_api_client(ConnectionSpec(server="https://127.0.0.1:1")), cache_key=key
    )
    assert nowhere.resource("apps", "Deployment") == ServedKind("apps/v1", "deployments", True)
    with pytest.raises(ClusterConnectError):
        nowhere.list("apps", "Deployment")  # listing still asks the cluster
    with pytest.raises(ClusterConnectError):
        nowhere.resource("batch", "Job")  # and so does a kind not cached yet


def test_a_stale_cached_path_is_dropped_and_rediscovered(kube_cluster: LocalCluster) -> None:
    key = f"test-{uuid.uuid4().hex}"
    cache.set(
        f"{discovery.CACHE_PREFIX}{key}",
        {"at": time.time(), "kinds": {"/Namespace": ("v1", "namespacez", False)}},
        60,
    )
    stale = ClusterReader(_api(kube_cluster), cache_key=key)
    assert stale.list("", "Namespace") == []  # the cached path answers 404
    assert cache.get(f"{discovery.CACHE_PREFIX}{key}") is None
    fresh = ClusterReader(_api(kube_cluster), cache_key=key)
    assert fresh.resource("", "Namespace") == ServedKind("v1", "namespaces", False)
    assert fresh.list("", "Namespace")


def test_this_process_keeps_what_it_resolved_no_longer_than_the_shared_entry(
    kube_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"test-{uuid.uuid4().hex}"
    ClusterReader(_api(kube_cluster), cache_key=key).resolve([("", "Pod")])
    cache.delete(f"{discovery.CACHE_PREFIX}{key}")  # the shared entry is gone (expired, say)
    nowhere = build_api_client(ConnectionSpec(server="https://127.0.0.1:1"))
    # the process's copy still answers while it is younger than the TTL...
    assert ClusterReader(nowhere, cache_key=key).resource("", "Pod") is not None
    # ...and not once the TTL has passed since it was resolved
    later = time.time() + discovery.DISCOVERY_TTL + 1
    monkeypatch.setattr(discovery.local_copy, "clock", lambda: later)
    with pytest.raises(ClusterConnectError):
        ClusterReader(nowhere, cache_key=key).resource("", "Pod")


def test_no_discovery_file_is_written(kube_cluster: LocalCluster) -> None:
    api = _api(kube_cluster)
    digest = hashlib.md5(api.configuration.host.encode(), usedforsecurity=False).hexdigest()
    library_file = Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"
    library_file.unlink(missing_ok=True)
    name = f"cm-{uuid.uuid4().hex[:6]}"
    apply_manifest(
        api,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
        },
    )
    assert k8s.CoreV1Api(api).read_namespaced_config_map(name, "default").metadata.name == name
    assert not library_file.exists()
    k8s.CoreV1Api(api).delete_namespaced_config_map(name, "default")


def test_a_dead_discovery_cache_only_costs_discovery_requests(kube_cluster: LocalCluster) -> None:
    from django.test import override_settings

    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with override_settings(CACHES=dead):
        reader = ClusterReader(_api(kube_cluster), cache_key=f"test-{uuid.uuid4().hex}")
        assert reader.resource("apps", "Deployment") == ServedKind("apps/v1", "deployments", True)
        assert {"default", "kube-system"} <= {
            ns["metadata"]["name"] for ns in reader.list("", "Namespace")
        }


def test_a_batch_prefetches_its_clusters_discovery_in_one_round_trip(
    kube_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"test-{uuid.uuid4().hex}" for _ in range(3)]
    for key in keys[:2]:
        ClusterReader(_api(kube_cluster), cache_key=key).resolve([("apps", "Deployment")])
        discovery.local_copy.drop(f"{discovery.CACHE_PREFIX}{key}")  # as in another worker
    asked: list[list[str]] = []
    get_many = cache.get_many

    def counted(wanted: list[str]) -> dict[str, object]:
        asked.append(wanted)
        return get_many(wanted)

    monkeypatch.setattr(cache, "get_many", counted)
    discovery.prefetch_discovery(keys)
    assert len(asked) == 1 and len(asked[0]) == 3
    nowhere = build_api_client(ConnectionSpec(server="https://127.0.0.1:1"))
    monkeypatch.setattr(cache, "get", lambda *a, **k: pytest.fail("asked the cache again"))
    for key in keys[:2]:  # found in this process now, without asking the cache
        assert ClusterReader(nowhere, cache_key=key).resource("apps", "Deployment") == ServedKind(
            "apps/v1", "deployments", True
        )
    discovery.prefetch_discovery(keys[:2])  # nothing left to ask for
    assert len(asked) == 1


def test_an_older_server_is_discovered_without_aggregated_discovery(
    kube_cluster: LocalCluster,
) -> None:
    """1.20 answers the aggregated Accept with the plain group list: the reader falls back
    to the group versions' own resource lists."""
    reader = ClusterReader(_api(kube_cluster))
    assert reader.resource("apps", "Deployment") == ServedKind("apps/v1", "deployments", True)
    assert reader._aggregated is False
    assert reader.resource("", "Pod") == ServedKind("v1", "pods", True)
