"""Talking to one member cluster for an application: apply the rendered objects (server-side
apply, field manager `keelson`), notice drift, prune what left the manifests, and read the
workloads' status back. Pure cluster I/O; the database side is applications.propagation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from kube.apply import delete_object, get_object, server_side_apply
from kube.ownership import object_ref, ref_key

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


def _version_of(body: dict[str, Any]) -> str | None:
    """What tells a write from no write: the generation where the kind has one (it moves
    only with the spec, not with status updates racing the apply), else resourceVersion."""
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
    result = ApplyResult()
    for obj in objects:
        ref = object_ref(obj)
        live = get_object(api, ref)
        before = _version_of(live) if live is not None else None
        applied = server_side_apply(api, obj)
        result.refs.append(ref)
        if before != _version_of(applied):
            result.changed.append(ref_key(ref))
    keep = {ref_key(ref) for ref in result.refs}
    for ref in previous:
        if ref_key(ref) in keep or ref["kind"] == "Namespace":
            continue
        if delete_object(api, ref):
            result.pruned.append(ref_key(ref))
    return result


def workload_status(api: k8s.ApiClient, refs: list[dict[str, str]]) -> WorkloadStatus:
    """Replicas wanted and available across the workloads, and whether every workload has
    finished rolling out (as `kubectl rollout status` decides)."""
    status = WorkloadStatus()
    for ref in refs:
        if ref["kind"] not in STATUS_KINDS:
            continue
        body = get_object(api, ref)
        if body is None:
            status.complete = False
            status.problems.append(f"{ref_key(ref)} is missing")
            continue
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
