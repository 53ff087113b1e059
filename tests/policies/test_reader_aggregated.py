"""Aggregated discovery (Kubernetes 1.27 and later) against the fleet simulator, which
answers it as a 1.29 API server does, and the plain documents as 1.20 does. The real
kube-apiserver of the test environment is 1.20, so the fallback is also tested against it
(test_reader_kube.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from benchmarks.simulator import Simulator, Variant, cluster_token, cluster_url, ensure_tls
from kube import discovery
from kube.client import ConnectionSpec, build_api_client
from policies.kube import ClusterReader, ServedKind

KINDS = [
    ("apps", "Deployment"),
    ("", "Pod"),
    ("batch", "CronJob"),
    ("batch", "Job"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("", "Namespace"),
    ("x.io", "Nope"),
]


class Running:
    def __init__(self, simulator: Simulator, port: int, secret: bytes, ca: str) -> None:
        self.simulator, self.port, self.secret, self.ca = simulator, port, secret, ca

    def api(self, index: int) -> k8s.ApiClient:
        return build_api_client(
            ConnectionSpec(
                server=cluster_url(self.port, index),
                ca_data=self.ca,
                token=cluster_token(self.secret, index),
            )
        )

    def requests(self) -> int:
        return self.simulator.stats.requests


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tls = ensure_tls(Path(tmp_path_factory.mktemp("sim-tls")))
    simulator = Simulator(8, tls)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    ports: list[int] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        ports.append(loop.run_until_complete(simulator.start()))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the simulator did not start"
    yield Running(simulator, ports[0], tls.token_secret(), tls.ca_pem)
    asyncio.run_coroutine_threadsafe(_shutdown(simulator), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


async def _shutdown(simulator: Simulator) -> None:
    """Close the server and the connections readers kept alive."""
    await simulator.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _index(legacy: bool) -> int:
    return next(i for i in range(8) if Variant.of(i).legacy == legacy)


def test_a_current_server_is_discovered_in_two_requests(simulated: Running) -> None:
    reader = ClusterReader(simulated.api(_index(legacy=False)))
    before = simulated.requests()
    served = reader.resolve(KINDS)
    assert simulated.requests() - before == 2  # /apis and /api, aggregated
    assert reader._aggregated is True
    assert served == {
        ("apps", "Deployment"): ServedKind("apps/v1", "deployments", True),
        ("", "Pod"): ServedKind("v1", "pods", True),
        ("batch", "CronJob"): ServedKind("batch/v1", "cronjobs", True),
        ("batch", "Job"): ServedKind("batch/v1", "jobs", True),
        ("networking.k8s.io", "NetworkPolicy"): ServedKind(
            "networking.k8s.io/v1", "networkpolicies", True
        ),
        ("", "Namespace"): ServedKind("v1", "namespaces", False),
        ("x.io", "Nope"): None,
    }
    assert reader.list("apps", "Deployment")  # and the paths it found list


def test_aggregated_and_plain_discovery_agree(
    simulated: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _index(legacy=False)
    aggregated = ClusterReader(simulated.api(index)).resolve(KINDS)
    monkeypatch.setattr(discovery, "AGGREGATED", "application/json")  # as before 1.27
    plain_reader = ClusterReader(simulated.api(index))
    before = simulated.requests()
    assert plain_reader.resolve(KINDS) == aggregated
    assert plain_reader._aggregated is False
    assert simulated.requests() - before == 5  # /apis, /api/v1 and three group versions


def test_an_older_server_falls_back_to_the_group_versions(simulated: Running) -> None:
    reader = ClusterReader(simulated.api(_index(legacy=True)))
    before = simulated.requests()
    served = reader.resolve(KINDS)
    assert reader._aggregated is False
    assert served[("batch", "CronJob")] == ServedKind("batch/v1beta1", "cronjobs", True)
    assert served[("batch", "Job")] == ServedKind("batch/v1", "jobs", True)
    # /apis told the server is older: no aggregated /api, straight to /api/v1
    assert simulated.requests() - before == 6


def test_only_core_kinds_ask_api_alone(simulated: Running) -> None:
    current = ClusterReader(simulated.api(_index(legacy=False)))
    before = simulated.requests()
    assert current.resource("", "Pod") == ServedKind("v1", "pods", True)
    assert simulated.requests() - before == 1
    older = ClusterReader(simulated.api(_index(legacy=True)))
    before = simulated.requests()
    assert older.resource("", "Pod") == ServedKind("v1", "pods", True)
    assert simulated.requests() - before == 2  # /api (plain versions), then /api/v1


def test_a_stale_version_is_asked_for_on_its_own() -> None:
    """Pure logic: what the reader keeps of an answer with a stale group version (an
    aggregated API server that is down)."""
    reader = ClusterReader(None)
    reader._groups = {}
    answer = {
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {"name": "metrics.k8s.io"},
                "versions": [{"version": "v1beta1", "freshness": "Stale", "resources": []}],
            },
            {
                "metadata": {"name": "apps"},
                "versions": [
                    {
                        "version": "v1",
                        "freshness": "Current",
                        "resources": [
                            {
                                "resource": "deployments",
                                "responseKind": {
                                    "group": "apps",
                                    "version": "v1",
                                    "kind": "Deployment",
                                },
                                "scope": "Namespaced",
                                "verbs": ["get", "list"],
                            },
                            {
                                "resource": "tokenreviews",
                                "responseKind": {"kind": "TokenReview"},
                                "scope": "Cluster",
                                "verbs": ["create"],
                            },
                        ],
                    }
                ],
            },
        ],
    }
    assert reader._take_aggregated(answer) is True
    assert reader._groups == {"metrics.k8s.io": ["v1beta1"], "apps": ["v1"]}
    assert "metrics.k8s.io/v1beta1" not in reader._lists  # to be asked for on its own
    assert reader._lists["apps/v1"] == {"Deployment": ServedKind("apps/v1", "deployments", True)}
    assert reader._take_aggregated({"kind": "APIGroupList", "groups": []}) is False
