"""Acceptance (issue 28): a three-stage node-pool update over four `local` clusters (real
kube-apiservers with simulated nodes). The drain of the first waits for a
PodDisruptionBudget; a workload crash-looping in stage 2 stops the run, which reverts stage
1 and 2's clusters; the next run, with the workload fixed, completes inside its
maintenance window.

Everything runs on the wall clock: the test sends the run's checks and each pool update's
checks (the `cluster.pool_update` Operations the run starts) as the workers would."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from accounts.models import Team
from clusters.choices import ClusterStatus
from clusters.models import Cluster, ClusterProvisioning, ClusterSet
from clusters.providers.base import ClusterSpec
from clusters.services.collection import clusters_collect
from clusters.services.credentials import cluster_api_client
from clusters.services.pool_update import cluster_pool_update_run
from clusters.services.provisioning import cluster_create, cluster_lifecycle_run
from kube.client import get_json, request_json
from localkube.simulator import SIMULATE_ANNOTATION
from operations.models import Operation
from tests.clusters.helpers import deploy_and_wait, wait_for
from tests.clusters.test_provisioning_local import local_dir  # noqa: F401 (a fixture)
from tests.factories import Member
from tests.updates.conftest import log_of, states
from updates.choices import ClusterState, RunState
from updates.models import MaintenanceWindow, UpdateRun, UpdateStrategy
from updates.services import (
    maintenance_window_save,
    update_run_check,
    update_run_create,
    update_run_preview,
    update_run_start,
    update_strategy_save,
)

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
V1, V2 = "ubuntu-2204-v1", "ubuntu-2204-v2"
RINGS = {"np-1": "canary", "np-2": "early", "np-3": "late", "np-4": "late"}
STAGES = [
    {"name": "canary", "groups": [{"name": "g", "selector": "ring=canary"}]},
    {"name": "early", "groups": [{"name": "g", "selector": "ring=early"}]},
    {"name": "late", "max_concurrency": 2, "groups": [{"name": "g", "selector": "ring=late"}]},
]


def local_fleet(team: Team) -> dict[str, Cluster]:
    """Four Ready local clusters, each with one node in pool `workers` on image v1."""
    spec = ClusterSpec.from_json(
        {
            "provider": "local",
            "region": "lab",
            "kubernetes_version": "1.20.2",
            "node_pools": [
                {"name": "workers", "instance_type": "m5.large", "count": 1, "image": V1}
            ],
        }
    )
    clusters = {}
    for name, ring in RINGS.items():
        operation = cluster_create(actor=None, team=team, name=name, spec=spec)
        cluster_lifecycle_run(operation_id=operation.pk)
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        Cluster.objects.filter(name=name).update(status=ClusterStatus.READY, labels={"ring": ring})
        clusters[name] = Cluster.objects.get(name=name)
    return clusters


def budget(api: k8s.ApiClient, namespace: str, app: str, min_available: int) -> None:
    """A policy/v1beta1 PodDisruptionBudget (what 1.20 serves), once its controller has
    computed what it allows."""
    path = f"/apis/policy/v1beta1/namespaces/{namespace}/poddisruptionbudgets"
    request_json(
        api,
        "POST",
        path,
        body={
            "apiVersion": "policy/v1beta1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": f"{app}-pdb"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "minAvailable": min_available},
        },
    )
    wait_for(
        lambda: get_json(api, f"{path}/{app}-pdb").get("status", {}).get("observedGeneration"),
        timeout=30,
        what=f"the disruption controller to observe {app}-pdb",
    )


def crashloop(api: k8s.ApiClient, namespace: str, name: str, on: bool) -> None:
    """Roll the Deployment to pods that crash-loop (or, `on` False, that run again)."""
    annotations = {SIMULATE_ANNOTATION: "crashloop" if on else None}
    k8s.AppsV1Api(api).patch_namespaced_deployment(
        name, namespace, {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    )


def available(api: k8s.ApiClient, namespace: str, name: str) -> bool:
    """Fully available on its current template (what the workloads gate asks)."""
    found = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    wanted, status = found.spec.replicas, found.status
    return (
        found.metadata.generation == status.observed_generation
        and (status.updated_replicas or 0) == wanted
        and (status.available_replicas or 0) == wanted
        and (status.replicas or 0) == wanted
    )


def ready_again(cluster: Cluster) -> bool:
    """The collector's next probe (as its periodic task would run) finds the cluster Ready:
    its crash-looping pods made it Degraded."""
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    return cluster.status == ClusterStatus.READY


def runs(image: str) -> str:
    """How a run shows what pool `workers` runs (from → to)."""
    return f"m5.large, image {image}, kubelet v1.20.2"


def pool_images(cluster: Cluster) -> list[str]:
    """The image each node of pool `workers` reports."""
    nodes = get_json(
        cluster_api_client(cluster=cluster),
        "/api/v1/nodes",
        {"labelSelector": "keelson.io/node-pool=workers"},
    )["items"]
    return [n["status"]["nodeInfo"]["osImage"] for n in nodes]


def stored_image(cluster: Cluster) -> str:
    spec = ClusterSpec.from_json(ClusterProvisioning.objects.get(cluster=cluster).spec)
    return spec.pool("workers").image


def work_pool_updates() -> None:
    """What the provisioning worker does: each pool update's check that is due."""
    for operation in Operation.objects.filter(
        kind="cluster.pool_update", state__in=("pending", "running")
    ):
        result = operation.result or {}
        due = result.get("check_at")
        if due is None or datetime.fromisoformat(due) <= timezone.now():
            cluster_pool_update_run(operation_id=operation.pk, tick=result.get("tick"))


def run_until(
    run: UpdateRun,
    until: Callable[[UpdateRun], bool],
    *,
    seconds: float = 120,
    beside: Callable[[UpdateRun], None] = lambda run: None,
) -> UpdateRun:
    """The run's checks and its pool updates' checks, on the wall clock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if until(run):
            return run
        update_run_check(run_id=run.pk, tick=run.tick)
        work_pool_updates()
        beside(run)
        time.sleep(0.5)
    raise AssertionError(f"not reached in {seconds:.0f} s: {run.state} {run.message}")


def new_run(team: Team, owner: Member, strategy: UpdateStrategy, name: str) -> UpdateRun:
    return update_run_create(
        actor=owner.user,
        team=team,
        name=name,
        strategy=strategy,
        change_kind="node_pool",
        change_params={"pool": "workers", "image": V2},
    )


def test_a_node_pool_update_reverts_on_a_crash_loop_then_completes_in_its_window(
    local_dir: Path,  # noqa: F811
    settings: Any,
    team: Team,
    owner: Member,
) -> None:
    settings.KEELSON_UPDATE_GATE_GRACE_SECONDS = 15
    settings.KEELSON_LOCAL_MAX_NODES_PER_TEAM = 20
    clusters = local_fleet(team)
    np1 = cluster_api_client(cluster=clusters["np-1"])
    np2 = cluster_api_client(cluster=clusters["np-2"])
    # np-1 runs web (2 pods) with a budget that keeps 1 available: one eviction at a time
    web = deploy_and_wait(np1, prefix="web", name="web", replicas=2, cpu="100m", memory="64Mi")
    budget(np1, web, "web", 1)
    # np-2 runs api, healthy
    api_ns = deploy_and_wait(np2, prefix="api", name="api", replicas=1, cpu="50m", memory="32Mi")
    strategy = update_strategy_save(
        actor=owner.user, strategy=UpdateStrategy(team=team, name="three-rings", stages=STAGES)
    )

    # when the first run goes, and api starts crash-looping while np-2 is being changed
    run = new_run(team, owner, strategy, "image v2")
    shown = update_run_preview(run=run)["stages"]
    assert [
        [(c["name"], c["from"], c["to"]) for c in s["groups"][0]["clusters"]] for s in shown
    ] == [
        [("np-1", runs(V1), runs(V2))],
        [("np-2", runs(V1), runs(V2))],
        [("np-3", runs(V1), runs(V2)), ("np-4", runs(V1), runs(V2))],
    ]
    update_run_start(actor=owner.user, run=run)
    broken: list[bool] = []

    def break_api(run: UpdateRun) -> None:
        if not broken and states(run)["np-2"] == ClusterState.CHANGING:
            crashloop(np2, api_ns, "api", on=True)
            broken.append(True)

    run = run_until(
        run, lambda r: r.state in (RunState.REVERTED, RunState.FAILED), beside=break_api
    )

    # then np-1's drain waited for the budget
    first = Operation.objects.filter(kind="cluster.pool_update", target_id=str(clusters["np-1"].pk))
    drained = "\n".join(first.earliest("created_at").log_lines.values_list("text", flat=True))
    assert "refused: PodDisruptionBudget web-pdb allows no disruption now" in drained
    # and np-2's workloads gate failed, so stage 3 never started and np-2 then np-1 went back
    assert run.state == RunState.REVERTED, run.message
    assert run.failure.startswith("np-2: gates failed: ")
    assert f"Deployment {api_ns}/api on np-2 is not fully available: " in run.failure
    assert states(run) == {
        "np-1": ClusterState.REVERTED,
        "np-2": ClusterState.REVERTED,
        "np-3": ClusterState.PENDING,
        "np-4": ClusterState.PENDING,
    }
    lines = log_of(run)
    assert any(line.startswith("np-2: gates not passed yet (checked again until") for line in lines)
    assert lines.index(f"np-2: reverting to {runs(V1)}") < lines.index(
        f"np-1: reverting to {runs(V1)}"
    )
    for name, cluster in clusters.items():
        assert (name, pool_images(cluster), stored_image(cluster)) == (name, [V1], V1)
    assert not Operation.objects.filter(
        target_id__in=[str(clusters["np-3"].pk), str(clusters["np-4"].pk)],
        kind="cluster.pool_update",
    ).exists()

    # given api fixed, and a maintenance window open from 10 minutes ago for an hour
    crashloop(np2, api_ns, "api", on=False)
    wait_for(lambda: available(np2, api_ns, "api"), timeout=60, what="api available again")
    wait_for(lambda: ready_again(clusters["np-2"]), timeout=60, what="np-2 Ready again")
    everything = ClusterSet.objects.create(name="all-pools", team=team)
    everything.members.add(*clusters.values())
    opens = datetime.now(UTC) - timedelta(minutes=10)
    maintenance_window_save(
        actor=owner.user,
        window=MaintenanceWindow(
            team=team,
            name="now",
            cluster_set=everything,
            days=[opens.isoweekday()],
            start_time=opens.time().replace(second=0, microsecond=0),
            duration_minutes=60,
            timezone="UTC",
        ),
    )
    window_start = opens.replace(second=0, microsecond=0)

    # when the next run goes
    second = new_run(team, owner, strategy, "image v2 again")
    shown = update_run_preview(run=second)["stages"]
    assert {c["name"]: c["windows"] for s in shown for c in s["groups"][0]["clusters"]} == {
        name: ["now"] for name in RINGS
    }
    update_run_start(actor=owner.user, run=second)
    second = run_until(second, lambda r: r.state != RunState.RUNNING, seconds=150)

    # then every cluster runs image v2, each changed inside the window
    assert second.state == RunState.SUCCEEDED, second.message
    for name, cluster in clusters.items():
        assert (name, pool_images(cluster), stored_image(cluster)) == (name, [V2], V2)
    for row in second.run_clusters.all():
        assert row.started_at is not None and row.finished_at is not None
        assert (
            window_start <= row.started_at <= row.finished_at <= window_start + timedelta(hours=1)
        )
    assert available(np1, web, "web") and available(np2, api_ns, "api")
