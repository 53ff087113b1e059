"""A node pool's rolling replacement on a real local cluster: surge, cordon, eviction
through the API server (PodDisruptionBudgets honoured), removal; the drain timeout; the
update runs' NodePoolChange with its revert."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from kubernetes import client as k8s
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import ClusterSpec
from clusters.services.credentials import cluster_api_client
from clusters.services.pool_update import cluster_pool_update_run
from clusters.services.provisioning import (
    cluster_create,
    cluster_lifecycle_run,
    cluster_pool_update,
)
from kube.client import get_json, request_json
from kube.drain import cordon, uncordon
from localkube.supervisor import apply_nodes
from operations.models import Operation
from tests.clusters.helpers import deploy_and_wait, wait_for
from tests.clusters.test_provisioning_local import local_dir  # noqa: F401 (a fixture)
from tests.factories import add_member, make_cluster, make_team, make_user
from updates.changes.node_pool import NodePoolChange

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def drive(
    operation: Operation, *, observe: Callable[[], None] = lambda: None, timeout: float = 240
) -> Operation:
    """Run the update's checks, each when its countdown ends (as a worker would), calling
    `observe` between them; the ended operation."""
    deadline = time.monotonic() + timeout
    cluster_pool_update_run(operation_id=operation.pk)  # the first check, as dispatched
    while True:
        operation.refresh_from_db()
        if operation.is_final:
            return operation
        if time.monotonic() > deadline:
            pytest.fail(f"pool update still {operation.state}: {operation.message}")
        due = datetime.fromisoformat(operation.result["check_at"])
        while timezone.now() < due:
            observe()
            time.sleep(0.2)
        cluster_pool_update_run(operation_id=operation.pk, tick=operation.result["tick"])


def _pool_nodes(api: k8s.ApiClient, pool: str) -> list[dict[str, Any]]:
    listed = get_json(api, "/api/v1/nodes", {"labelSelector": f"keelson.io/node-pool={pool}"})
    return sorted(listed["items"], key=lambda n: n["metadata"]["name"])


def _budget(api: k8s.ApiClient, namespace: str, name: str, selector: str, **rule: int) -> None:
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
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": selector}}, **rule},
        },
    )
    wait_for(
        lambda: get_json(api, f"{path}/{name}").get("status", {}).get("observedGeneration"),
        timeout=30,
        what=f"the disruption controller to observe {name}",
    )


def _ready_pods(api: k8s.ApiClient, namespace: str, app: str) -> int:
    pods = get_json(api, f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": f"app={app}"})
    return sum(
        1
        for pod in pods["items"]
        if not pod["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions") or []
        )
    )


def _on_paper(team: Team, name: str, **pool: Any) -> Cluster:
    """A cluster with a stored `local` spec and no processes: what is refused, and what
    starts, before any node is touched."""
    cluster = make_cluster(team=team, name=name)
    pools = [{"name": "workers", "instance_type": "m5.large", "count": 2, **pool}]
    spec = ClusterSpec.from_json(
        {"provider": "local", "region": "lab", "kubernetes_version": "1.20.2", "node_pools": pools}
    )
    ClusterProvisioning.objects.create(cluster=cluster, provider="local", spec=spec.as_json())
    return cluster


def _log(operation: Operation) -> str:
    return "\n".join(operation.log_lines.values_list("text", flat=True))


def test_pool_update_replaces_nodes_honouring_budgets_then_a_change_reverts(
    local_dir: Path,  # noqa: F811
    settings: Any,
) -> None:
    # given a local cluster with a pool of 3 nodes and a spare pool of 1, all on image v1
    team = make_team()
    pools = [
        {"name": "workers", "instance_type": "m5.large", "count": 3, "image": "ubuntu-2204-v1"},
        {"name": "spare", "instance_type": "m5.large", "count": 1, "image": "ubuntu-2204-v1"},
    ]
    spec = ClusterSpec.from_json(
        {"provider": "local", "region": "lab", "kubernetes_version": "1.20.2", "node_pools": pools}
    )
    created = cluster_create(actor=None, team=team, name="pools-1", spec=spec)
    cluster_lifecycle_run(operation_id=created.pk)
    created.refresh_from_db()
    assert created.state == "succeeded", created.error
    cluster = Cluster.objects.get(name="pools-1")
    api = cluster_api_client(cluster=cluster)
    old_workers = [n["metadata"]["name"] for n in _pool_nodes(api, "workers")]
    (old_spare,) = [n["metadata"]["name"] for n in _pool_nodes(api, "spare")]
    assert len(old_workers) == 3

    # and a Deployment of 3 whose pods all run on the first worker (the others cordoned
    # while it starts), with a budget that keeps 2 of them available
    for name in [*old_workers[1:], old_spare]:
        cordon(api, name)
    namespace = deploy_and_wait(
        api, prefix="pdb", name="web", replicas=3, cpu="100m", memory="64Mi"
    )
    for name in [*old_workers[1:], old_spare]:
        uncordon(api, name)
    _budget(api, namespace, "web-pdb", "web", minAvailable=2)

    # when the pool moves to image v2 and kubelet v1.19.16 (one minor behind: allowed)
    operation = cluster_pool_update(
        actor=None, cluster=cluster, pool="workers", image="ubuntu-2204-v2", version="1.19.16"
    )
    fewest = [3]
    messages: set[str] = set()

    def observe() -> None:
        fewest[0] = min(fewest[0], _ready_pods(api, namespace, "web"))
        messages.add(Operation.objects.get(pk=operation.pk).message)

    operation = drive(operation, observe=observe)

    # then every node of the pool is a new one with the new image and kubelet version
    assert operation.state == "succeeded", operation.error
    nodes = _pool_nodes(api, "workers")
    assert len(nodes) == 3
    assert not {n["metadata"]["name"] for n in nodes} & set(old_workers)
    for node in nodes:
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.19.16"
        assert node["status"]["nodeInfo"]["kubeProxyVersion"] == "v1.19.16"
        assert node["status"]["nodeInfo"]["osImage"] == "ubuntu-2204-v2"
        assert node["metadata"]["labels"]["keelson.io/node-image"] == "ubuntu-2204-v2"
        assert not node["spec"].get("unschedulable")
    # the old nodes are gone from the API server
    everything = {n["metadata"]["name"] for n in get_json(api, "/api/v1/nodes")["items"]}
    assert not everything & set(old_workers)
    # the budget held throughout, and it did refuse evictions (the drain waited)
    assert fewest[0] >= 2
    assert "eviction of " in _log(operation)
    assert "refused: PodDisruptionBudget web-pdb allows no disruption now" in _log(operation)
    assert operation.result["refused"] >= 1
    # the first pass evicted one of the first node's three pods; the budget refused the
    # others (one of them, if the replacement of the first was Ready that fast)
    said = re.compile(r"node 1 of 3: draining \((2 pods|1 pod) blocked by PDB web-pdb\)")
    assert any(said.fullmatch(message) for message in messages), messages
    assert _ready_pods(api, namespace, "web") == 3
    stored = ClusterSpec.from_json(ClusterProvisioning.objects.get(cluster=cluster).spec)
    assert stored.pool("workers").image == "ubuntu-2204-v2"
    assert stored.pool("workers").version == "v1.19.16"
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "active"
    # and asking for what it runs now changes nothing
    with pytest.raises(ValidationError, match=r"runs m5\.large, image ubuntu-2204-v2"):
        cluster_pool_update(actor=None, cluster=cluster, pool="workers", image="ubuntu-2204-v2")

    # given a pod pinned to the spare pool whose budget allows no disruption at all
    stuck = deploy_and_wait(api, prefix="stuck", name="db", replicas=1, cpu="50m", memory="32Mi")
    k8s.AppsV1Api(api).patch_namespaced_deployment(
        "db",
        stuck,
        {"spec": {"template": {"spec": {"nodeSelector": {"keelson.io/node-pool": "spare"}}}}},
    )
    wait_for(
        lambda: _on_node(api, stuck, "db") == old_spare, timeout=60, what="db on the spare node"
    )
    _budget(api, stuck, "db-pdb", "db", maxUnavailable=0)
    settings.KEELSON_POOL_DRAIN_TIMEOUT = 4

    # when the spare pool is updated
    failed = drive(
        cluster_pool_update(actor=None, cluster=cluster, pool="spare", image="ubuntu-2204-v2")
    )

    # then the drain gave up after the timeout, said why, and the node is still there
    assert failed.state == "failed"
    assert "not drained within 4 s" in failed.error
    assert "1 pod blocked by PDB db-pdb" in failed.error
    node = get_json(api, f"/api/v1/nodes/{old_spare}")
    assert not node["spec"].get("unschedulable")  # schedulable again
    assert _on_node(api, stuck, "db") == old_spare
    stored = ClusterSpec.from_json(ClusterProvisioning.objects.get(cluster=cluster).spec)
    assert stored.pool("spare").image == "ubuntu-2204-v1"
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "active"

    # given the budget is gone, an update run's change of the spare pool
    request_json(
        api, "DELETE", f"/apis/policy/v1beta1/namespaces/{stuck}/poddisruptionbudgets/db-pdb"
    )
    registered = make_cluster(team=team, name="registered-1")
    change = NodePoolChange(team=team, params={"pool": "spare", "image": "ubuntu-2204-v2"})
    plan, skipped = change.plan([cluster, registered])
    assert (plan.from_value, plan.to_value, plan.skip_reason) == (
        "m5.large, image ubuntu-2204-v1, kubelet v1.20.2",
        "m5.large, image ubuntu-2204-v2, kubelet v1.20.2",
        "",
    )
    assert "not created by Keelson" in skipped.skip_reason
    assert change.impact([cluster, registered]) == {"pools-1": {"nodes": 1}}

    # when it starts and is polled until done
    state = change.start(cluster, actor=None)
    assert change.poll(cluster, state).state == "running"
    drive(Operation.objects.get(pk=state["operation"]))
    done = change.poll(cluster, state)

    # then the spare pool runs v2 only
    assert done.state == "done", done.message
    assert [n["status"]["nodeInfo"]["osImage"] for n in _pool_nodes(api, "spare")] == [
        "ubuntu-2204-v2"
    ]

    # when it is reverted
    state = change.revert(cluster, state, actor=None)
    drive(Operation.objects.get(pk=state["operation"]))

    # then the old image is back
    assert change.poll(cluster, state).state == "done"
    spare = _pool_nodes(api, "spare")
    assert [n["status"]["nodeInfo"]["osImage"] for n in spare] == ["ubuntu-2204-v1"]
    assert spare[0]["metadata"]["name"] == old_spare  # the same name: the same spec
    stored = ClusterSpec.from_json(ClusterProvisioning.objects.get(cluster=cluster).spec)
    assert stored.pool("spare").image == "ubuntu-2204-v1"


def _on_node(api: k8s.ApiClient, namespace: str, app: str) -> str | None:
    pods = get_json(api, f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": f"app={app}"})
    running = [
        p
        for p in pods["items"]
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
    ]
    return running[0]["spec"].get("nodeName") if len(running) == 1 else None


def test_pool_updates_are_refused_with_the_reason(local_dir: Path) -> None:  # noqa: F811
    team = make_team()
    cluster = _on_paper(team, "refusals-1")

    with pytest.raises(ValidationError) as raised:
        cluster_pool_update(actor=None, cluster=cluster, pool="gpu", image="x")
    assert "No node pool named 'gpu'" in raised.value.message_dict["pool"][0]
    with pytest.raises(ValidationError) as raised:
        cluster_pool_update(actor=None, cluster=cluster, pool="workers", image="Not An Image")
    assert list(raised.value.message_dict) == ["image"]
    with pytest.raises(ValidationError, match=r"kubelet v1\.21\.0 with control plane v1\.20\.2"):
        cluster_pool_update(actor=None, cluster=cluster, pool="workers", version="1.21.0")

    # one lifecycle action at a time
    scale = Operation.objects.create(
        kind="cluster.scale", target_type="clusters.cluster", target_id=str(cluster.pk)
    )
    with pytest.raises(ValidationError, match=r"busy: cluster\.scale"):
        cluster_pool_update(actor=None, cluster=cluster, pool="workers", image="ubuntu-2204-v2")
    scale.delete()

    # a registered cluster's pools are not Keelson's; the capi provider cannot do it
    with pytest.raises(ValidationError, match="registered, not created by Keelson"):
        cluster_pool_update(
            actor=None, cluster=make_cluster(team=team, name="reg-2"), pool="workers", image="y"
        )
    ClusterProvisioning.objects.filter(cluster=cluster).update(provider="capi")
    with pytest.raises(ValidationError, match="Cluster API replaces a pool's machines itself"):
        cluster_pool_update(actor=None, cluster=cluster, pool="workers", image="ubuntu-2204-v2")
    assert not Operation.objects.filter(kind="cluster.pool_update").exists()


def test_the_api_updates_a_pool_for_admins_and_names_bad_fields(local_dir: Path) -> None:  # noqa: F811
    team = make_team(name="pool-team")
    cluster = _on_paper(team, "api-pools-1")
    url = "/api/v1/clusters/api-pools-1/update_pool/"

    def client(role: Role) -> APIClient:
        user = make_user()
        add_member(team, user, role)
        api = APIClient()
        api.force_authenticate(user)
        return api

    body = {"pool": "workers", "image": "ubuntu-2204-v2"}
    assert client(Role.OPERATOR).post(url, body, format="json").status_code == 403
    admin = client(Role.ADMIN)
    bad = admin.post(url, {"pool": "workers", "image": "Bad Image"}, format="json")
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["image"]
    bad = admin.post(url, {"pool": "workers", "version": "1.22.0"}, format="json")
    assert bad.status_code == 400 and "never newer" in bad.json()["error"]["fields"]["version"][0]
    assert not Operation.objects.exists()

    started = admin.post(url, body, format="json")

    assert started.status_code == 202, started.content
    operation = Operation.objects.get(pk=started.json()["id"])
    assert operation.kind == "cluster.pool_update"
    assert operation.params["pool"] == "workers"
    assert operation.params["previous"] == {"image": "", "instance_type": "m5.large", "version": ""}
    assert ClusterSpec.from_json(operation.params["spec"]).pool("workers").image == "ubuntu-2204-v2"
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "upgrading"


def test_the_cluster_page_replaces_a_pools_nodes(local_dir: Path) -> None:  # noqa: F811
    team = make_team(name="pool-page")
    _on_paper(team, "page-pools-1", image="ubuntu-a")
    admin = make_user()
    add_member(team, admin, Role.ADMIN)
    browser = Client()
    browser.force_login(admin)

    page = browser.get("/clusters/page-pools-1/").content.decode()
    assert "Replace nodes" in page and 'value="ubuntu-a"' in page

    form = {"pool": "workers", "instance_type": "m5.large", "image": "ubuntu-a", "version": ""}
    unchanged = browser.post("/clusters/page-pools-1/update-pool/", form, follow=True)
    assert "cannot be read" in unchanged.content.decode()  # the same values: its nodes decide
    assert not Operation.objects.exists()

    started = browser.post("/clusters/page-pools-1/update-pool/", {**form, "image": "ubuntu-b"})

    operation = Operation.objects.get(kind="cluster.pool_update")
    assert started.status_code == 302 and str(operation.pk) in started["Location"]
    target = ClusterSpec.from_json(operation.params["spec"]).pool("workers")
    assert (target.image, target.instance_type, target.version) == ("ubuntu-b", "m5.large", "")


def test_a_changed_node_in_the_spec_reaches_the_simulated_node(kube_env: Any) -> None:
    # given a running cluster's simulated nodes, as the supervisor holds them
    local = kube_env.start_cluster(f"respec-{uuid.uuid4().hex[:4]}")
    try:
        simulator = local.simulator
        core = k8s.CoreV1Api(local.control_plane.api_client())
        current = dict(simulator.nodes)
        changed, dropped = sorted(current)
        wanted = {changed: replace(current[changed], kubelet_version="v1.19.7", image="ubuntu-b")}

        # when spec.json names one node with another image and version, and not the other
        apply_nodes(simulator, current, wanted)

        # then the node reports them, and the other is gone
        node = core.read_node(changed)
        assert node.status.node_info.kubelet_version == "v1.19.7"
        assert node.status.node_info.os_image == "ubuntu-b"
        assert node.metadata.labels["keelson.io/node-image"] == "ubuntu-b"
        names = [n.metadata.name for n in core.list_node().items]
        assert names == [changed] and dropped not in names
    finally:
        kube_env.stop_cluster(local.name, remove_data=True)


def test_a_canceled_pool_update_ends_and_frees_the_cluster(local_dir: Path) -> None:  # noqa: F811
    cluster = _on_paper(make_team(), "cancel-pools-1")
    pending = cluster_pool_update(actor=None, cluster=cluster, pool="workers", image="v2")
    running = Operation.objects.filter(pk=pending.pk)
    running.update(state="running", cancel_requested=True)  # as a worker holds it

    cluster_pool_update_run(operation_id=pending.pk)

    pending.refresh_from_db()
    assert pending.state == "canceled"
    assert pending.message.startswith("Canceled; nodes replaced so far stay")
    assert ClusterProvisioning.objects.get(cluster=cluster).lifecycle == "active"
    # and the next lifecycle action may start
    again = cluster_pool_update(actor=None, cluster=cluster, pool="workers", image="v2")
    assert again.state == "pending"
