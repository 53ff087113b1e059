"""What an application's version becomes in one cluster: its manifests with the target
namespace filled in, the cluster's replica share, the overrides that target the cluster,
and Keelson's owner labels (so the objects can be found, diffed and pruned)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from applications.manifests import CLUSTER_SCOPED, parse_manifests
from applications.overrides import SCALABLE_KINDS, Override, PatchError, apply_override
from kube.ownership import (
    APP_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    VERSION_ANNOTATION,
)


class RenderError(ValueError):
    """An override cannot be applied to the manifests (a patch path that does not exist)."""


@dataclass(frozen=True)
class Target:
    cluster: str
    labels: dict[str, str]
    replicas: int | None  # the cluster's share; None keeps the manifests' own counts


def render(
    *,
    application: str,
    namespace: str,
    version: int,
    manifests: str,
    target: Target,
    overrides: list[Override],
) -> list[dict[str, Any]]:
    """The objects to apply, in order: the namespace first, then the manifests."""
    objects = copy.deepcopy(parse_manifests(manifests))
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        if obj["kind"] not in CLUSTER_SCOPED and not metadata.get("namespace"):
            metadata["namespace"] = namespace
        if target.replicas is not None and obj["kind"] in SCALABLE_KINDS:
            obj.setdefault("spec", {})["replicas"] = target.replicas
    for obj in objects:
        _default_protocols(obj)
    for rule in overrides:
        if rule.targets(target.cluster, target.labels):
            try:
                apply_override(objects, rule)
            except PatchError as error:
                raise RenderError(f"override for {target.cluster}: {error}") from None
    for obj in objects:
        metadata = obj["metadata"]
        metadata["labels"] = {
            **(metadata.get("labels") or {}),
            MANAGED_BY_LABEL: MANAGED_BY_VALUE,
            APP_LABEL: application,
        }
        metadata["annotations"] = {
            **(metadata.get("annotations") or {}),
            VERSION_ANNOTATION: str(version),
        }
    # The namespace is shared with other applications: owned by Keelson, not by this app,
    # so pruning the application never deletes it.
    if not any(o["kind"] == "Namespace" and o["metadata"]["name"] == namespace for o in objects):
        objects.insert(
            0,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
            },
        )
    return objects


def _default_protocols(obj: dict[str, Any]) -> None:
    """Fill `protocol: TCP` where it is left out of ports. Server-side apply on clusters
    before 1.24 refuses such lists ("associative list ... omits key field protocol"); TCP
    is the API's own default, so nothing changes in meaning."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if obj.get("kind") == "Service":
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
        return
    template = (spec.get("template") or {}).get("spec") if obj.get("kind") != "Pod" else spec
    if obj.get("kind") == "CronJob":
        template = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec"
        )
    if not isinstance(template, dict):
        return
    for container in (template.get("containers") or []) + (template.get("initContainers") or []):
        for port in (container.get("ports") or []) if isinstance(container, dict) else []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def rendered_hash(objects: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()[:16]
