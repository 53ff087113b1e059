"""Talking to one member cluster for an application: apply the rendered objects (server-side
apply, field manager `keelson`), notice drift, prune what left the manifests, and read the
workloads' status back. Pure cluster I/O; the database side is applications.propagation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from kube.client import ClusterConnectError, classify, timeout_kwargs
from kube.dynamic import dynamic_client
from kube.ownership import FIELD_MANAGER, object_ref, ref_key

STATUS_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"}


@dataclass
class ApplyResult:
    refs: list[dict[str, str]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # objects the apply wrote to
    pruned: list[str] = field(default_factory=list)


@dataclass
class WorkloadStatus:
    desired: int = 0
    available: int = 0
    complete: bool = True  # every workload updated and available
    problems: list[str] = field(default_factory=list)


def _server_message(error: Exception) -> str:
    """The API server's own explanation of a refused object (422 and the like)."""
    try:
        return str(json.loads(getattr(error, "body", None) or "{}").get("message", ""))[:500]
    except (ValueError, AttributeError, TypeError):
        return ""


def _error(error: Exception, ref: dict[str, str]) -> ClusterConnectError:
    if isinstance(error, ClusterConnectError):
        return error
    classified = classify(error)
    if (getattr(error, "status", None) or 0) >= 400:
        detail = _server_message(error)
        if detail:
            return ClusterConnectError(classified.code, f"{ref_key(ref)}: {detail}")
    return ClusterConnectError(classified.code, f"{ref_key(ref)}: {classified.message}")


def _dynamic(api: k8s.ApiClient) -> DynamicClient:
    """A dynamic client; building one reads discovery, so it fails like any call."""
    try:
        return dynamic_client(api)
    except Exception as error:
        raise classify(error) from None


def _resource(dynamic: DynamicClient, ref: dict[str, str]) -> Any:
    return dynamic.resources.get(api_version=ref["apiVersion"], kind=ref["kind"])


def _live_version(dynamic: DynamicClient, ref: dict[str, str]) -> str | None:
    """What tells a write from no write: the generation where the kind has one (it moves
    only with the spec, not with status updates racing the apply), else resourceVersion."""
    resource = _resource(dynamic, ref)
    try:
        live = resource.get(
            name=ref["name"],
            namespace=ref["namespace"] or None if resource.namespaced else None,
            **timeout_kwargs(),
        )
    except (NotFoundError, ApiException) as error:
        if getattr(error, "status", None) == 404:
            return None
        raise
    return _version_of(live.to_dict())


def _version_of(body: dict[str, Any]) -> str:
    metadata = body.get("metadata") or {}
    if metadata.get("generation") is not None:
        return f"g{metadata['generation']}"
    return f"r{metadata.get('resourceVersion', '')}"


def apply_objects(
    api: k8s.ApiClient, objects: list[dict[str, Any]], *, previous: list[dict[str, str]]
) -> ApplyResult:
    """Apply `objects` in order and delete what `previous` had and `objects` lacks.

    An apply that changes nothing does not write (generation and resourceVersion stay),
    so an object whose version moved was changed: by a new rendering, or by someone editing
    what Keelson owns (drift), which the apply has just put back."""
    dynamic = _dynamic(api)
    result = ApplyResult()
    for obj in objects:
        ref = object_ref(obj)
        try:
            before = _live_version(dynamic, ref)
            resource = _resource(dynamic, ref)
            applied = resource.server_side_apply(
                body=obj,
                name=ref["name"],
                namespace=ref["namespace"] or None if resource.namespaced else None,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                **timeout_kwargs(),
            ).to_dict()
        except Exception as error:
            raise _error(error, ref) from None
        result.refs.append(ref)
        if before != _version_of(applied):
            result.changed.append(ref_key(ref))
    keep = {ref_key(ref) for ref in result.refs}
    for ref in previous:
        if ref_key(ref) in keep or ref["kind"] == "Namespace":
            continue
        if delete_object(api, ref, dynamic=dynamic):
            result.pruned.append(ref_key(ref))
    return result


def delete_object(
    api: k8s.ApiClient, ref: dict[str, str], *, dynamic: DynamicClient | None = None
) -> bool:
    """Delete one object; False if it was gone already."""
    dynamic = dynamic or _dynamic(api)
    try:
        resource = _resource(dynamic, ref)
        resource.delete(
            name=ref["name"],
            namespace=ref["namespace"] or None if resource.namespaced else None,
            body={"propagationPolicy": "Background"},
            **timeout_kwargs(),
        )
    except Exception as error:
        if getattr(error, "status", None) == 404:
            return False
        if "ResourceNotFound" in type(error).__name__:
            return False  # the kind itself is gone (a CRD removed)
        raise _error(error, ref) from None
    return True


def workload_status(api: k8s.ApiClient, refs: list[dict[str, str]]) -> WorkloadStatus:
    """Replicas wanted and available across the workloads, and whether every workload has
    finished rolling out (as `kubectl rollout status` decides)."""
    dynamic = _dynamic(api)
    status = WorkloadStatus()
    for ref in refs:
        if ref["kind"] not in STATUS_KINDS:
            continue
        try:
            live = _resource(dynamic, ref).get(
                name=ref["name"], namespace=ref["namespace"], **timeout_kwargs()
            )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                status.complete = False
                status.problems.append(f"{ref_key(ref)} is missing")
                continue
            raise _error(error, ref) from None
        body = live.to_dict()
        spec, state = body.get("spec") or {}, body.get("status") or {}
        generation = (body.get("metadata") or {}).get("generation", 0)
        observed = state.get("observedGeneration", 0)
        if ref["kind"] == "DaemonSet":
            wanted = int(state.get("desiredNumberScheduled") or 0)
            updated = int(state.get("updatedNumberScheduled") or 0)
            available = int(state.get("numberAvailable") or 0)
            total = wanted
        else:
            wanted = int(spec.get("replicas", 1))
            updated = int(state.get("updatedReplicas") or 0)
            available = int(state.get("availableReplicas") or 0)
            total = int(state.get("replicas") or 0)
            if ref["kind"] == "ReplicaSet":
                updated = total  # a ReplicaSet has one template
        status.desired += wanted
        status.available += min(available, wanted)
        if observed < generation:
            status.complete = False
            status.problems.append(f"{ref_key(ref)}: waiting for the controller")
        elif updated < wanted:
            status.complete = False
            status.problems.append(f"{ref_key(ref)}: {updated} of {wanted} replicas updated")
        elif total > updated:
            status.complete = False
            status.problems.append(f"{ref_key(ref)}: {total - updated} old replicas terminating")
        elif available < wanted:
            status.complete = False
            status.problems.append(f"{ref_key(ref)}: {available} of {wanted} replicas available")
    return status
