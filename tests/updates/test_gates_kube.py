"""The workloads gate against a real kube-apiserver (localkube, simulated nodes): a
Deployment whose new pods crash-loop fails it by name, fixed it passes again, a deleted
workload fails it, and a cluster that cannot be read fails it with the reason, fast."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from clusters.choices import ClusterStatus, CredentialKind
from clusters.models import Cluster
from clusters.services.credentials import credential_store
from kube.client import ConnectionSpec
from localkube.env import LocalCluster
from localkube.simulator import SIMULATE_ANNOTATION
from tests.clusters.helpers import deploy_and_wait, register_local, wait_for
from tests.factories import make_cluster, make_team
from updates.gates import gate_baseline, gate_check, gates_validate
from updates.gates_workloads import READ_SECONDS

pytestmark = [pytest.mark.django_db, pytest.mark.kube]

# Only the gates under test: the shared session cluster's other workloads and conditions
# belong to other tests.
WORKLOADS_ONLY = gates_validate({"conditions": False, "policies": False})


@pytest.fixture
def member(kube_cluster: LocalCluster) -> Cluster:
    cluster = register_local(kube_cluster, team=make_team(), name="gated")
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.READY)
    cluster.refresh_from_db()
    return cluster


@pytest.fixture
def web(kube_cluster: LocalCluster) -> Iterator[tuple[k8s.AppsV1Api, str]]:
    """A Deployment `web` of 2 replicas, all available, in a namespace of its own."""
    api = kube_cluster.control_plane.api_client()
    namespace = deploy_and_wait(
        api, prefix="gate", name="web", replicas=2, cpu="10m", memory="16Mi"
    )
    yield k8s.AppsV1Api(api), namespace
    k8s.CoreV1Api(api).delete_namespace(namespace)


def _mine(failures: list[str], namespace: str) -> list[str]:
    return [f for f in failures if f"/{namespace}" in f or f" {namespace}/" in f]


def _wait_for_failures(
    member: Cluster, baseline: dict[str, Any], namespace: str, what: str
) -> list[str]:
    """The gate's failures about `namespace`, once there are any."""
    found: list[str] = wait_for(
        lambda: _mine(gate_check(member, baseline, config=WORKLOADS_ONLY), namespace),
        timeout=60,
        what=f"the gate to see {what}",
    )
    return found


def _simulate(apps: k8s.AppsV1Api, namespace: str, value: str | None) -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {SIMULATE_ANNOTATION: value}}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)


def test_crash_looping_rollout_fails_the_gate_and_the_fix_passes_it(
    member: Cluster, web: tuple[k8s.AppsV1Api, str]
) -> None:
    apps, namespace = web
    # given a baseline with web fully available
    baseline = gate_baseline(member, config=WORKLOADS_ONLY)
    assert baseline["errors"] == []
    assert baseline["workloads"]["items"][f"Deployment {namespace}/web"] == [2, 2, 2, 0]
    assert _mine(gate_check(member, baseline, config=WORKLOADS_ONLY), namespace) == []

    # when its pods start crash-looping (a new template: the surge pod never gets ready
    # while the two old ones stay available)
    _simulate(apps, namespace, "crashloop")

    # then the gate fails at once (at first the controller has not observed the new
    # template: nothing counts as on it), and once the rollout is stuck it names the
    # deployment and says what is missing: one surge pod, two old ones still running
    assert _wait_for_failures(member, baseline, namespace, "the crash-looping rollout")
    stuck = [
        f"Deployment {namespace}/web on gated is not fully available: 2 of 2 replicas "
        "available, 1 of 2 on its current template, 2 old replicas still running (it was "
        "fully available before the change)."
    ]
    wait_for(
        lambda: _mine(gate_check(member, baseline, config=WORKLOADS_ONLY), namespace) == stuck,
        timeout=60,
        what="the gate to see the stuck rollout",
    )

    # when it is fixed (the template goes back), then the gate passes again
    _simulate(apps, namespace, None)
    wait_for(
        lambda: not _mine(gate_check(member, baseline, config=WORKLOADS_ONLY), namespace),
        timeout=60,
        what="the gate to pass after the fix",
    )


def test_a_deleted_workload_fails_the_gate(member: Cluster, web: tuple[k8s.AppsV1Api, str]) -> None:
    apps, namespace = web
    baseline = gate_baseline(member, config=WORKLOADS_ONLY)
    # when the deployment is deleted
    apps.delete_namespaced_deployment("web", namespace)
    # then
    failures = _wait_for_failures(member, baseline, namespace, "the deleted deployment")
    assert failures == [
        f"Deployment {namespace}/web on gated is gone (it was there before the change)."
    ]


def _unreadable(name: str, server: str) -> Cluster:
    cluster = make_cluster(
        team=make_team(), name=name, status=ClusterStatus.READY, api_server_url=server
    )
    spec = ConnectionSpec(server=server, token="not-a-real-token")
    credential_store(cluster=cluster, spec=spec, kind=CredentialKind.TOKEN)
    return cluster


@pytest.fixture(params=["http", "https"])
def silent_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers: not even
    a TLS handshake."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"{request.param}://127.0.0.1:{listener.getsockname()[1]}"


def test_a_silent_cluster_fails_the_gate_within_the_read_bound(silent_server: str) -> None:
    cluster = _unreadable("silent", silent_server)
    # when its baseline and its check are taken
    started = time.monotonic()
    baseline = gate_baseline(cluster, config=WORKLOADS_ONLY)
    failures = gate_check(cluster, baseline, config=WORKLOADS_ONLY)
    took = time.monotonic() - started
    # then both say why, and neither waited longer than the bound
    assert baseline["errors"] == [f"silent did not answer within {READ_SECONDS:g} s."]
    assert failures == [
        f"Cannot read the workloads of silent: silent did not answer within {READ_SECONDS:g} s."
    ]
    assert took < 2 * READ_SECONDS + 1


def test_a_refused_connection_fails_the_gate_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    cluster = _unreadable("refused", f"https://127.0.0.1:{port}")
    started = time.monotonic()
    failures = gate_check(
        cluster, {"workloads": {"source": "live", "items": {}}}, config=WORKLOADS_ONLY
    )
    assert time.monotonic() - started < 3
    assert len(failures) == 1
    assert failures[0].startswith(
        f"Cannot read the workloads of refused: Cannot connect to https://127.0.0.1:{port}"
    )


def test_an_unready_cluster_fails_with_its_reason(member: Cluster, settings: Any) -> None:
    baseline = gate_baseline(member, config=WORKLOADS_ONLY)
    Cluster.objects.filter(pk=member.pk).update(
        status=ClusterStatus.DEGRADED, status_reason="NodesNotReady"
    )
    failures = gate_check(member, baseline, config=gates_validate({"workloads": False}))
    assert failures == ["gated is Degraded, not Ready (NodesNotReady)."]
