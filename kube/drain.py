"""Cordoning and draining a node through the Eviction API, one quick pass per call.

Which pods a drain evicts follows `kubectl drain --ignore-daemonsets` with kubectl's
other defaults (kubernetes.io/docs/reference/generated/kubectl/kubectl-commands#drain):

- DaemonSet pods and mirror (static) pods are left alone: their controller or the
  kubelet would bring them back on the same node;
- pods already terminating are not evicted again (the drain waits for them to go);
- finished pods (Succeeded, Failed) are evicted whatever else holds;
- pods using `emptyDir` local storage (kubectl needs `--delete-emptydir-data`) and pods
  no controller manages (kubectl needs `--force`) are *held*: never evicted, since their
  data or the pod itself would be lost; the drain does not finish while they stay.

`evict` posts an Eviction in the version the API server names for `pods/eviction`
(policy/v1beta1 up to 1.21, policy/v1 from 1.22, as kubectl picks it): the API server
deletes the pod unless a PodDisruptionBudget allows no disruption now, which it answers
429; the caller tries again later. Nothing here waits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.client import classify, get_json, timeout_kwargs

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FINISHED = frozenset({"Succeeded", "Failed"})
_BUDGET = re.compile(r"disruption budget (\S+)")


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class NodePods:
    """The pods on a node, sorted by what a drain does with them."""

    evict: list[PodRef] = field(default_factory=list)
    # Never evicted (kubectl's defaults), with why: the drain cannot finish while they stay.
    held: dict[str, str] = field(default_factory=dict)
    terminating: list[PodRef] = field(default_factory=list)
    skipped: int = 0  # DaemonSet and mirror pods

    @property
    def drained(self) -> bool:
        return not (self.evict or self.held or self.terminating)


@dataclass(frozen=True)
class EvictResult:
    pod: PodRef
    outcome: Literal["evicted", "blocked", "gone"]
    # For "blocked": the PodDisruptionBudget that refused it, and the API server's words.
    budget: str = ""
    message: str = ""


def _controller(pod: dict[str, Any]) -> dict[str, Any] | None:
    owners = pod.get("metadata", {}).get("ownerReferences") or []
    return next((owner for owner in owners if owner.get("controller")), None)


def sort_pods(pods: list[dict[str, Any]]) -> NodePods:
    """Sort pods (the API's JSON) as `kubectl drain --ignore-daemonsets` would."""
    result = NodePods()
    for pod in pods:
        metadata = pod.get("metadata", {})
        ref = PodRef(metadata.get("namespace", ""), metadata.get("name", ""))
        controller = _controller(pod)
        if metadata.get("deletionTimestamp"):
            result.terminating.append(ref)
        elif (controller and controller.get("kind") == "DaemonSet") or MIRROR_ANNOTATION in (
            metadata.get("annotations") or {}
        ):
            result.skipped += 1
        elif pod.get("status", {}).get("phase") in FINISHED:
            result.evict.append(ref)
        elif any("emptyDir" in volume for volume in pod.get("spec", {}).get("volumes") or []):
            result.held[str(ref)] = (
                "uses emptyDir local storage (kubectl drain needs --delete-emptydir-data)"
            )
        elif controller is None:
            result.held[str(ref)] = "is managed by no controller (kubectl drain needs --force)"
        else:
            result.evict.append(ref)
    return result


def evictable_pods(api: k8s.ApiClient, node: str) -> NodePods:
    """The pods bound to `node`, sorted by what a drain does with them."""
    listed = get_json(api, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"})
    return sort_pods(listed.get("items") or [])


def _set_unschedulable(api: k8s.ApiClient, node: str, value: bool) -> bool:
    """False when the node does not exist."""
    try:
        k8s.CoreV1Api(api).patch_node(  # a strategic merge patch
            node, {"spec": {"unschedulable": value}}, _preload_content=False, **timeout_kwargs()
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise classify(error) from None
    return True


def cordon(api: k8s.ApiClient, node: str) -> bool:
    """Mark `node` unschedulable; False when it does not exist."""
    return _set_unschedulable(api, node, True)


def uncordon(api: k8s.ApiClient, node: str) -> bool:
    return _set_unschedulable(api, node, False)


def budget_of(body: Any) -> str:
    """The PodDisruptionBudget named in a 429 Status's causes ("The disruption budget
    web-pdb needs 2 healthy pods and has 2 currently"), or ""."""
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        return ""
    for cause in (status.get("details") or {}).get("causes") or []:
        match = _BUDGET.search(str(cause.get("message", "")))
        if match:
            return match[1]
    return ""


def _cause(body: Any) -> str:
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        return ""
    causes = (status.get("details") or {}).get("causes") or []
    return "; ".join(str(c.get("message", "")) for c in causes) or str(status.get("message", ""))


def eviction_version(core_discovery: dict[str, Any]) -> str:
    """The Eviction apiVersion `/api/v1`'s discovery names for `pods/eviction`."""
    for resource in core_discovery.get("resources") or []:
        if resource.get("name") == "pods/eviction":
            return f"{resource.get('group') or 'policy'}/{resource.get('version') or 'v1beta1'}"
    return "policy/v1beta1"


def eviction_version_of(api: k8s.ApiClient) -> str:
    return eviction_version(get_json(api, "/api/v1") or {})


def evict(api: k8s.ApiClient, pod: PodRef, *, version: str = "policy/v1beta1") -> EvictResult:
    """Ask the API server to evict `pod` (it honours PodDisruptionBudgets); `version` is
    the Eviction's apiVersion (`eviction_version_of`)."""
    body = {
        "apiVersion": version,
        "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
    }
    try:
        k8s.CoreV1Api(api).create_namespaced_pod_eviction(
            pod.name, pod.namespace, body, _preload_content=False, **timeout_kwargs()
        )
    except ApiException as error:
        if error.status == 404:
            return EvictResult(pod, "gone")
        if error.status == 429:
            return EvictResult(pod, "blocked", budget_of(error.body), _cause(error.body)[:300])
        raise classify(error) from None
    return EvictResult(pod, "evicted")
