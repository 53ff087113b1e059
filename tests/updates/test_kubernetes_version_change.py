"""The Kubernetes-version change of update runs through the `capi` provider, against a real
kube-apiserver holding the Cluster API CRDs, where the test plays the Cluster API
controllers (as tests/clusters/test_provisioning_capi.py does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clusters.choices import Lifecycle
from clusters.models import Cluster, ClusterProvisioning
from localkube import LocalKubeEnv
from localkube.env import LocalCluster
from operations.models import Operation
from operations.services import operation_cancel
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_team
from tests.updates.capi_support import (
    kcp_version,
    local_cluster,
    md_version,
    provisioning_worker,
    report_kcp,
    start_management,
    vsphere_cluster,
)
from updates.changes import change_for
from updates.changes.base import Change

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def management(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    yield start_management(kube_env, "kinds-mgmt")
    kube_env.stop_cluster("kinds-mgmt", remove_data=True)


def _poll_until(change: Change, cluster: Cluster, state: dict[str, Any], wanted: str) -> str:
    def ended() -> str:
        step = change.poll(cluster, state)
        return step.message if step.state == wanted else ""

    return str(wait_for(ended, timeout=30, what=f"the change to be {wanted}"))


def test_an_upgrade_goes_through_cluster_api_control_plane_first(
    settings: Any, management: LocalCluster, kube_cluster: LocalCluster
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    api = management.control_plane.api_client()
    team = make_team()
    registered = register_local(management, team=team, name="kinds-mgmt")
    vs1 = vsphere_cluster(team, kube_cluster, api, name="vs-1", management="kinds-mgmt")
    local = local_cluster(team, "lab-1")
    change = change_for("kubernetes_version", team=team, params={"version": "1.28.0"})
    assert change.params() == {"version": "v1.28.0"}

    # when the run is previewed
    plans = {p.cluster_name: p for p in change.plan([vs1, registered, local])}
    impact = change.impact([vs1])

    # then vs-1 goes 1.27.3 → 1.28.0 and the others are skipped with their reason
    assert (plans["vs-1"].from_value, plans["vs-1"].to_value) == ("v1.27.3", "v1.28.0")
    assert plans["vs-1"].skip_reason == ""
    assert plans["vs-1"].estimate_seconds == 900 + 2 * 180
    assert plans["kinds-mgmt"].skip_reason.startswith("kinds-mgmt was registered, not created")
    assert plans["lab-1"].skip_reason == (
        "The local provider cannot upgrade clusters: it runs one version (v1.20.2)."
    )
    # and the preview shows both versions' end of life (upstream dates: an on-prem cluster)
    assert impact["vs-1"]["from"] == "v1.27 reached end of life 2024-06-28"
    assert impact["vs-1"]["to"] == "v1.28 reached end of life 2024-10-28"

    # when the change starts on vs-1
    state = change.start(vs1, actor=None)
    operation = Operation.objects.get(pk=state["operation"])
    assert operation.kind == "cluster.upgrade"
    assert change.poll(vs1, state).message == "The upgrade waits for a worker."
    thread = provisioning_worker(state["operation"])

    # then the control plane gets the new version while the workers keep theirs
    wait_for(
        lambda: kcp_version(api, "vs-1") == "v1.28.0", timeout=30, what="the control plane patch"
    )
    time.sleep(1)  # a few of the provider's checks
    assert md_version(api, "vs-1") == "v1.27.3"
    assert change.poll(vs1, state).state == "running"
    # and a second run's start on the busy cluster fails it with the reason, changing nothing
    other = change_for("kubernetes_version", team=team, params={"version": "1.28.2"})
    refused = other.start(vs1, actor=None)
    assert "operation" not in refused
    assert other.poll(vs1, refused).message.startswith("vs-1 is busy: cluster.upgrade")

    # when Cluster API reports the control plane upgraded
    report_kcp(api, "vs-1", "v1.28.0")

    # then the node pools follow and the change is done
    assert _poll_until(change, vs1, state, "done") == "Cluster vs-1 upgraded"
    thread.join(timeout=30)
    assert md_version(api, "vs-1") == "v1.28.0"
    assert ClusterProvisioning.objects.get(cluster=vs1).spec["kubernetes_version"] == "v1.28.0"
    # and the next preview knows it: already there, and 1.30 would skip a minor version
    assert change.plan([vs1])[0].skip_reason == "Already on v1.28.0."
    assert change.poll(vs1, change.start(vs1, actor=None)).state == "done"
    skipping = change_for("kubernetes_version", team=team, params={"version": "v1.30.0"})
    assert skipping.plan([vs1])[0].skip_reason == (
        "v1.28.0 → v1.30.0 would skip v1.29: Kubernetes upgrades the control plane one minor "
        "version at a time."
    )
    # and it cannot be reverted
    with pytest.raises(ValidationError, match="cannot be reverted"):
        change.revert(vs1, state, actor=None)


def test_cancelling_the_upgrade_operation_fails_the_change(
    settings: Any, management: LocalCluster, kube_cluster: LocalCluster
) -> None:
    settings.KEELSON_CAPI_POLL_SECONDS = 0.2
    api = management.control_plane.api_client()
    team = make_team()
    register_local(management, team=team, name="kinds-mgmt")
    vs1 = vsphere_cluster(team, kube_cluster, api, name="vs-1", management="kinds-mgmt")
    change = change_for("kubernetes_version", team=team, params={"version": "1.28.1"})

    # given an upgrade under way, waiting for the control plane
    state = change.start(vs1, actor=None)
    thread = provisioning_worker(state["operation"])
    wait_for(
        lambda: kcp_version(api, "vs-1") == "v1.28.1", timeout=30, what="the control plane patch"
    )

    # when someone cancels its operation
    operation_cancel(operation=Operation.objects.get(pk=state["operation"]), actor=None)
    thread.join(timeout=30)

    # then the provider stopped at its next check and the change reports the cluster failed
    message = _poll_until(change, vs1, state, "failed")
    assert message.startswith("The upgrade was canceled")
    assert md_version(api, "vs-1") == "v1.27.3"  # the workers were never touched
    assert ClusterProvisioning.objects.get(cluster=vs1).lifecycle == Lifecycle.ACTIVE
