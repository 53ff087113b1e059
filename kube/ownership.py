"""How Keelson marks what it writes into member clusters, so it can be found and removed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.resource import ResourceList

from kube.client import timeout_kwargs
from kube.dynamic import dynamic_client

logger = logging.getLogger(__name__)

FIELD_MANAGER = "keelson"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "keelson"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
# What an application's objects carry: its name, and the version that wrote them.
APP_LABEL = "keelson.io/application"
VERSION_ANNOTATION = "keelson.io/application-version"


def object_ref(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    return {
        "apiVersion": str(obj.get("apiVersion", "")),
        "kind": str(obj.get("kind", "")),
        "namespace": str(metadata.get("namespace") or ""),
        "name": str(metadata.get("name", "")),
    }


def ref_key(ref: dict[str, str]) -> str:
    return f"{ref['kind']}/{ref['namespace']}/{ref['name']}".replace("//", "/")


def remove_managed_objects(
    api: k8s.ApiClient, *, progress: Callable[[int, int, str], None] | None = None
) -> list[str]:
    """Delete every object labelled as Keelson's, across every listable, deletable kind.
    Namespaces go last (their deletion takes what is left inside). Returns what was
    deleted as `kind/namespace/name`."""
    dynamic = dynamic_client(api)
    resources = [
        resource
        for resource in dynamic.resources.search()
        if not isinstance(resource, ResourceList)
        and "list" in (resource.verbs or [])
        and "delete" in (resource.verbs or [])
        and "/" not in resource.name  # subresources
        and resource.preferred
    ]
    resources.sort(key=lambda r: r.kind == "Namespace")
    deleted: list[str] = []
    for index, resource in enumerate(resources, start=1):
        if progress is not None:
            progress(index, len(resources), resource.kind)
        try:
            items = resource.get(label_selector=MANAGED_SELECTOR, **timeout_kwargs()).items
        except ApiException as error:
            if error.status in (403, 404, 405):
                continue
            raise
        for item in items:
            namespace = item.metadata.namespace or ""
            try:
                resource.delete(
                    name=item.metadata.name,
                    namespace=namespace or None,
                    body={"propagationPolicy": "Background"},
                    **timeout_kwargs(),
                )
            except ApiException as error:
                if error.status != 404:
                    raise
            deleted.append(f"{resource.kind}/{namespace}/{item.metadata.name}".replace("//", "/"))
    return deleted
