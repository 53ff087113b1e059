"""Acceptance (issue 28): a Kubernetes upgrade run through the `capi` provider, with an
approval between its stages, driven end to end through the API and the run's checks.

The management cluster is a real kube-apiserver with the Cluster API CRDs; the test plays
Cluster API's KubeadmControlPlane controller (it reports the new version once asked for
it) and the provisioning worker (each `cluster.upgrade` Operation the run dispatches is
run by `cluster_lifecycle_run`, as the worker's task does). The upgraded clusters' API
server, which the health gates read, is the session's member cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from accounts.models import Team
from audit.models import AuditEvent
from clusters.choices import ClusterStatus
from clusters.models import Cluster, ClusterProvisioning
from localkube.env import LocalCluster, LocalKubeEnv
from localkube.simulator import SIMULATE_ANNOTATION
from operations.models import Operation
from tests.clusters.helpers import deploy_and_wait, register_local
from tests.factories import Member
from tests.updates.capi_support import (
    kcp_reported,
    kcp_version,
    local_cluster,
    md_version,
    play_control_planes,
    provisioning_worker,
    start_management,
    vsphere_cluster,
)
from tests.updates.conftest import Clock, check, operation, states
from updates.choices import RunState
from updates.models import UpdateRun, UpdateStrategy
from updates.services import update_run_create, update_run_start, update_strategy_save

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]
MGMT = "accept-mgmt"
LIFECYCLE_TASK = "clusters.tasks.cluster_lifecycle_task"
CAPI = ["vs-1", "vs-2", "vs-3"]
RUNS = "/api/v1/update-runs/"


@pytest.fixture(scope="module")
def management(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    yield start_management(kube_env, MGMT)
    kube_env.stop_cluster(MGMT, remove_data=True)


class Provisioning:
    """Plays what runs beside the hub: the provisioning worker (a thread per upgrade
    operation the run dispatched) and Cluster API's control-plane controller."""

    def __init__(self, api: k8s.ApiClient, sent: list[dict[str, Any]]) -> None:
        self.api = api
        self.sent = sent
        self.workers: dict[str, threading.Thread] = {}

    def work(self) -> None:
        for message in self.sent:
            if message["name"] == LIFECYCLE_TASK:
                operation_id = message["args"][0]
                if operation_id not in self.workers:
                    self.workers[operation_id] = provisioning_worker(operation_id)
        play_control_planes(self.api, CAPI)

    def join(self) -> None:
        for thread in self.workers.values():
            thread.join(timeout=30)


def run_until(
    run: UpdateRun,
    clock: Clock,
    provisioning: Provisioning,
    until: Callable[[UpdateRun], bool],
    *,
    seconds: float = 60,
) -> UpdateRun:
    """The run's checks, as the worker sends them, while the upgrades go on beside."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if until(run):
            return run
        check(run, clock)
        provisioning.work()
        time.sleep(0.2)
    raise AssertionError(f"not reached in {seconds:.0f} s: {run.state} {run.message}")


def clusters_of(preview: dict[str, Any], stage: int) -> dict[str, tuple[str, str, str]]:
    return {
        c["name"]: (c["from"], c["to"], c["skip_reason"])
        for group in preview["stages"][stage]["groups"]
        for c in group["clusters"]
    }


def fleet(team: Team, management: LocalCluster, workload: LocalCluster) -> dict[str, Cluster]:
    """vs-1 (canary) and vs-2, vs-3 (prod), built with Cluster API at v1.27.3; the
    management cluster itself (registered, canary) and lab-1 (the local provider, prod)."""
    api = management.control_plane.api_client()
    registered = register_local(management, team=team, name=MGMT)
    Cluster.objects.filter(pk=registered.pk).update(  # as the collector found it
        status=ClusterStatus.READY, labels={"ring": "canary"}, kubernetes_version="v1.20.2"
    )
    clusters = {MGMT: registered, "lab-1": local_cluster(team, "lab-1", labels={"ring": "prod"})}
    for name in CAPI:
        ring = "canary" if name == "vs-1" else "prod"
        clusters[name] = vsphere_cluster(
            team, workload, api, name=name, management=MGMT, labels={"ring": ring}
        )
    return clusters


def test_an_upgrade_waits_for_an_approval_between_stages_then_upgrades_every_cluster(
    settings: Any,
    management: LocalCluster,
    kube_cluster: LocalCluster,
    team: Team,
    owner: Member,
    operator: Member,
    viewer: Member,
    sent: list[dict[str, Any]],
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    api = management.control_plane.api_client()
    clock = Clock(timezone.now())
    fleet(team, management, kube_cluster)
    update_strategy_save(
        actor=operator.user,
        strategy=UpdateStrategy(
            team=team,
            name="canary-then-prod",
            stages=[
                {"name": "canary", "groups": [{"name": "one", "selector": "ring=canary"}]},
                {
                    "name": "prod",
                    "approval": True,
                    "max_concurrency": 2,
                    "groups": [{"name": "all", "selector": "ring=prod"}],
                },
            ],
        ),
    )

    # when an admin (upgrades take one) creates the run and previews it
    created = owner.api.post(
        RUNS,
        {
            "team": team.name,
            "name": "kubernetes 1.28",
            "strategy": "canary-then-prod",
            "change_kind": "kubernetes_version",
            "change_params": {"version": "1.28.0"},
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    run = UpdateRun.objects.get(pk=created.json()["id"])
    assert run.change_params == {"version": "v1.28.0"}
    preview = owner.api.get(f"{RUNS}{run.pk}/preview/").json()

    # then every cluster shows from → to, and the two that cannot be upgraded say why
    assert clusters_of(preview, 0) == {
        MGMT: (
            "v1.20.2",
            "v1.28.0",
            f"{MGMT} was registered, not created by Keelson: its lifecycle (and its version) "
            "is managed elsewhere.",
        ),
        "vs-1": ("v1.27.3", "v1.28.0", ""),
    }
    assert clusters_of(preview, 1) == {
        "lab-1": (
            "v1.20.2",
            "v1.28.0",
            "The local provider cannot upgrade clusters: it runs one version (v1.20.2).",
        ),
        "vs-2": ("v1.27.3", "v1.28.0", ""),
        "vs-3": ("v1.27.3", "v1.28.0", ""),
    }
    assert (preview["clusters"], preview["to_change"], preview["skipped"]) == (5, 3, 2)
    assert [s["approval"] for s in preview["stages"]] == [False, True]
    # 15 min for a control plane + 3 min for each of 2 workers = 1260 s a cluster; canary
    # changes 1 cluster, prod 2 at once: 1260 + ceil(2 / 2) * 1260 (the approval counts zero)
    assert [s["expected_seconds"] for s in preview["stages"]] == [1260, 1260]
    assert preview["expected_seconds"] == 2520
    assert preview["impact"]["vs-1"]["from"] == "v1.27 reached end of life 2024-06-28"
    assert preview["impact"]["vs-1"]["to"] == "v1.28 reached end of life 2024-10-28"

    # when it starts, then the canary is upgraded and the run waits for the approval
    started = owner.api.post(f"{RUNS}{run.pk}/start/")
    assert started.status_code == 202, started.json()
    provisioning = Provisioning(api, sent)
    run = run_until(
        run, clock, provisioning, lambda r: r.state == RunState.WAITING_APPROVAL, seconds=60
    )
    assert (kcp_version(api, "vs-1"), md_version(api, "vs-1")) == ("v1.28.0", "v1.28.0")
    for name in ("vs-2", "vs-3"):
        assert (kcp_version(api, name), md_version(api, name)) == ("v1.27.3", "v1.27.3")
    assert operation(run).message == "stage prod waits for approval"
    assert states(run) == {
        MGMT: "skipped",
        "vs-1": "succeeded",
        "lab-1": "skipped",
        "vs-2": "pending",
        "vs-3": "pending",
    }
    # and stays waiting however many checks come
    for _ in range(3):
        run = check(run, clock)
    assert run.state == RunState.WAITING_APPROVAL
    assert [m["args"] for m in sent if m["name"] == LIFECYCLE_TASK] == [
        [str(o)]
        for o in Operation.objects.filter(kind="cluster.upgrade").values_list("pk", flat=True)
    ]
    assert len(provisioning.workers) == 1  # vs-1's upgrade only

    # when a viewer approves, then it is refused and nothing moves
    refused = viewer.api.post(f"{RUNS}{run.pk}/approve/", {"stage": 1}, format="json")
    assert refused.status_code == 403
    run = check(run, clock)
    assert run.state == RunState.WAITING_APPROVAL

    # when an operator approves, then stage prod upgrades vs-2 and vs-3 and the run succeeds
    approved = operator.api.post(f"{RUNS}{run.pk}/approve/", {"stage": 1}, format="json")
    assert approved.status_code == 200, approved.json()
    run = run_until(run, clock, provisioning, lambda r: r.state != RunState.RUNNING, seconds=60)
    provisioning.join()
    assert run.state == RunState.SUCCEEDED, run.message
    assert run.message == "Kubernetes v1.28.0: 3 cluster(s) changed, 2 skipped"
    assert operation(run).result == {"changed": CAPI}
    # the capi objects carry the new version, reported by the control planes; the specs too
    for name in CAPI:
        assert (kcp_version(api, name), kcp_reported(api, name), md_version(api, name)) == (
            "v1.28.0",
            "v1.28.0",
            "v1.28.0",
        )
        spec = ClusterProvisioning.objects.get(cluster__name=name).spec
        assert spec["kubernetes_version"] == "v1.28.0"
    # both prod clusters were upgrading at the same time (max_concurrency 2)
    upgrades = Operation.objects.filter(kind="cluster.upgrade").order_by("created_at")
    assert [o.target_repr for o in upgrades] == CAPI
    vs2_done = upgrades[1].finished_at
    assert vs2_done is not None and upgrades[2].created_at < vs2_done
    # the audit log has the approval, by the operator, of stage prod
    approval = AuditEvent.objects.get(action="update_run.approve", target_id=str(run.pk))
    assert (approval.actor, approval.detail) == (operator.user, {"stage": "prod", "index": 1})
    assert not AuditEvent.objects.filter(action="update_run.approve", actor=viewer.user).exists()


def test_a_gate_failing_after_an_upgrade_stops_the_run_and_says_who_is_on_which_version(
    settings: Any,
    management: LocalCluster,
    kube_cluster: LocalCluster,
    team: Team,
    owner: Member,
    sent: list[dict[str, Any]],
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    settings.KEELSON_UPDATE_GATE_GRACE_SECONDS = 10
    api = management.control_plane.api_client()
    clock = Clock(timezone.now())
    fleet(team, management, kube_cluster)
    # the clusters' workloads (their API server's): shop, fully available
    member = kube_cluster.control_plane.api_client()
    namespace = deploy_and_wait(
        member, prefix="shop", name="shop", replicas=1, cpu="50m", memory="32Mi"
    )
    strategy = UpdateStrategy(
        team=team,
        name="one-by-one",
        stages=[
            {"name": "canary", "groups": [{"name": "one", "selector": "ring=canary"}]},
            {"name": "prod", "groups": [{"name": "all", "selector": "ring=prod"}]},
        ],
    )
    run = update_run_create(
        actor=owner.user,
        team=team,
        name="kubernetes 1.28",
        strategy=update_strategy_save(actor=owner.user, strategy=strategy),
        change_kind="kubernetes_version",
        change_params={"version": "1.28.0"},
    )
    update_run_start(actor=owner.user, run=run)
    provisioning = Provisioning(api, sent)

    # when shop starts crash-looping while vs-2 is upgraded
    run = run_until(run, clock, provisioning, lambda r: states(r)["vs-2"] == "changing")
    k8s.AppsV1Api(member).patch_namespaced_deployment(
        "shop",
        namespace,
        {"spec": {"template": {"metadata": {"annotations": {SIMULATE_ANNOTATION: "crashloop"}}}}},
    )
    try:
        run = run_until(run, clock, provisioning, lambda r: r.state != RunState.RUNNING)
    finally:
        provisioning.join()
        k8s.CoreV1Api(member).delete_namespace(namespace)

    # then vs-2's gate fails after its grace; vs-3 is never upgraded; nothing goes back
    assert run.state == RunState.FAILED, run.message
    assert states(run) == {
        MGMT: "skipped",
        "vs-1": "succeeded",
        "lab-1": "skipped",
        "vs-2": "failed",
        "vs-3": "pending",
    }
    # (and, if the upgrade's own collection saw the crash loop, a new PodsHealthy=False)
    assert run.failure.startswith("vs-2: gates failed: ")
    assert f"Deployment {namespace}/shop on vs-2 is not fully available: " in run.failure
    # and the run says which cluster is on which version
    done = operation(run)
    assert done.error.endswith(
        ". Kubernetes v1.28.0 cannot be reverted: on v1.20.2: "
        f"{MGMT}, lab-1; on v1.28.0: vs-1, vs-2; on v1.27.3: vs-3"
    )
    assert {name: value["on"] for name, value in done.result["clusters"].items()} == {
        MGMT: "v1.20.2",
        "lab-1": "v1.20.2",
        "vs-1": "v1.28.0",
        "vs-2": "v1.28.0",
        "vs-3": "v1.27.3",
    }
    assert [kcp_version(api, name) for name in CAPI] == ["v1.28.0", "v1.28.0", "v1.27.3"]
    assert [md_version(api, name) for name in CAPI] == ["v1.28.0", "v1.28.0", "v1.27.3"]
