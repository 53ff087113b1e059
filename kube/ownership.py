"""How Keelson marks what it writes into member clusters, so it can be found and removed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.client import get_json
from kube.discovery import discovery_for
from kube.objects import delete_served

logger = logging.getLogger(__name__)

FIELD_MANAGER = "keelson"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "keelson"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
PAGE = 500
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
    """Delete every object labelled as Keelson's, across every listable, deletable kind
    (each group's preferred version, from discovery). Namespaces go last (their deletion
    takes what is left inside). Returns what was deleted as `kind/namespace/name`."""
    kinds = discovery_for(api).preferred(verbs=frozenset({"list", "delete"}))
    kinds.sort(key=lambda found: found[0] == "Namespace")
    deleted: list[str] = []
    for index, (kind, served) in enumerate(kinds, start=1):
        if progress is not None:
            progress(index, len(kinds), kind)
        try:
            items = _labelled(api, served.path())
        except ApiException as error:
            if error.status in (403, 404, 405):
                continue
            raise
        for item in items:
            metadata = item.get("metadata") or {}
            namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name", ""))
            delete_served(api, served, namespace, name)
            deleted.append(f"{kind}/{namespace}/{name}".replace("//", "/"))
    return deleted


def _labelled(api: k8s.ApiClient, path: str) -> list[dict[str, Any]]:
    """Every object at `path` carrying Keelson's label, page by page."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {"labelSelector": MANAGED_SELECTOR, "limit": str(PAGE)}
        page = get_json(api, path, {**query, "continue": token} if token else query)
        items.extend(page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return items
