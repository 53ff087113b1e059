"""Server-side apply of manifests into a cluster, with Keelson's field manager and labels."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client as k8s

from kube.client import classify, timeout_kwargs
from kube.dynamic import dynamic_client
from kube.ownership import FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE


def with_ownership(manifest: dict[str, Any], owner_labels: dict[str, str]) -> dict[str, Any]:
    """A copy of `manifest` labelled as Keelson's (plus the owner's labels)."""
    body = copy.deepcopy(manifest)
    labels = body.setdefault("metadata", {}).setdefault("labels", {}) or {}
    labels.update({MANAGED_BY_LABEL: MANAGED_BY_VALUE, **owner_labels})
    body["metadata"]["labels"] = labels
    return body


def apply_manifest(
    api: k8s.ApiClient, manifest: dict[str, Any], *, owner_labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """Server-side apply one object (conflicts forced: Keelson owns what it declares)."""
    body = with_ownership(manifest, owner_labels or {})
    try:
        resource = dynamic_client(api).resources.get(
            api_version=body["apiVersion"], kind=body["kind"]
        )
        result = resource.server_side_apply(
            body=body,
            name=body["metadata"]["name"],
            namespace=body["metadata"].get("namespace") if resource.namespaced else None,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            **timeout_kwargs(),
        )
    except Exception as error:
        raise classify(error) from None
    return dict(result.to_dict())
