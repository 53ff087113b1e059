"""Which pods a drain evicts, as `kubectl drain --ignore-daemonsets` with kubectl's other
defaults decides (kubectl-commands#drain), and reading a refused eviction's budget."""

from __future__ import annotations

import json
from typing import Any

from kube.drain import PodRef, budget_of, eviction_version, sort_pods


def _pod(
    name: str,
    *,
    owner: str | None = "ReplicaSet",
    phase: str = "Running",
    volumes: list[dict[str, Any]] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    owners = [{"kind": owner, "name": f"{name}-owner", "controller": True}] if owner else []
    return {
        "metadata": {"namespace": "shop", "name": name, "ownerReferences": owners, **metadata},
        "spec": {"volumes": volumes or []},
        "status": {"phase": phase},
    }


def test_replicated_pods_are_evicted() -> None:
    pods = sort_pods([_pod("web-1"), _pod("db-0", owner="StatefulSet"), _pod("j", owner="Job")])
    assert pods.evict == [PodRef("shop", "web-1"), PodRef("shop", "db-0"), PodRef("shop", "j")]
    assert not pods.held and not pods.drained


def test_daemonset_and_mirror_pods_are_left_alone_and_do_not_hold_the_drain() -> None:
    mirror = _pod(
        "etcd-node-1", owner="Node", annotations={"kubernetes.io/config.mirror": "abc123"}
    )
    pods = sort_pods([_pod("fluentd-x", owner="DaemonSet"), mirror])
    assert pods.evict == [] and pods.skipped == 2
    assert pods.drained


def test_terminating_pods_are_not_evicted_again_but_the_drain_waits_for_them() -> None:
    pods = sort_pods([_pod("web-1", deletionTimestamp="2026-12-05T16:00:00Z")])
    assert pods.evict == []
    assert pods.terminating == [PodRef("shop", "web-1")]
    assert not pods.drained


def test_unmanaged_and_emptydir_pods_are_held_as_kubectl_refuses_them_by_default() -> None:
    scratch = _pod("cache-1", volumes=[{"name": "tmp", "emptyDir": {}}])
    config = _pod("cfg-1", volumes=[{"name": "c", "configMap": {"name": "c"}}])
    pods = sort_pods([_pod("debug", owner=None), scratch, config])
    assert pods.held == {
        "shop/debug": "is managed by no controller (kubectl drain needs --force)",
        "shop/cache-1": "uses emptyDir local storage (kubectl drain needs --delete-emptydir-data)",
    }
    assert pods.evict == [PodRef("shop", "cfg-1")]  # other volumes do not hold a pod


def test_an_owner_that_is_not_the_controller_does_not_make_a_pod_managed() -> None:
    pod = _pod("x", owner=None)
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "controller": False}]
    assert list(sort_pods([pod]).held) == ["shop/x"]


def test_finished_pods_are_evicted_even_unmanaged_or_with_local_storage() -> None:
    done = _pod("once", owner=None, phase="Succeeded", volumes=[{"name": "t", "emptyDir": {}}])
    pods = sort_pods([done, _pod("crashed", owner=None, phase="Failed")])
    assert pods.evict == [PodRef("shop", "once"), PodRef("shop", "crashed")]
    assert not pods.held


def test_the_refusing_budget_is_read_from_the_status_causes() -> None:
    # the body a 1.20 API server answers a refused eviction with (429)
    body = json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests",
            "details": {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": "The disruption budget web-pdb needs 2 healthy pods and has "
                        "2 currently",
                    }
                ]
            },
            "code": 429,
        }
    ).encode()
    assert budget_of(body) == "web-pdb"
    assert budget_of(b"") == ""
    assert budget_of(b"<html>busy</html>") == ""


def test_the_eviction_version_is_the_one_discovery_names() -> None:
    # /api/v1's discovery on 1.20 and on 1.22+ (abridged), and an answer without it
    old = {"name": "pods/eviction", "group": "policy", "version": "v1beta1", "kind": "Eviction"}
    new = {"name": "pods/eviction", "group": "policy", "version": "v1", "kind": "Eviction"}
    pods = {"name": "pods", "kind": "Pod"}
    assert eviction_version({"resources": [pods, old]}) == "policy/v1beta1"
    assert eviction_version({"resources": [pods, new]}) == "policy/v1"
    assert eviction_version({"resources": [pods]}) == "policy/v1beta1"
