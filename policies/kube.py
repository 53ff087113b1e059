"""Reading a member cluster for policies: kinds resolved by discovery (`kube/discovery.py`,
shared per cluster and server version through the cache), listed once each. A list that
answers 404 drops the cluster's discovery entry. Lists and gets are decoded straight from
JSON (no client model objects), through the cluster's ApiClient pool, with the same TLS,
auth, timeouts and error classification.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.client import ClusterConnectError, classify, get_json
from kube.discovery import Discovery, ServedKind, prefetch_discovery
from kube.objects import delete_served

__all__ = ["PAGE", "ClusterReader", "ServedKind", "prefetch_discovery"]

PAGE = 500
Kind = tuple[str, str]  # (group, kind)
Kinds = list[Kind]
Objects = list[dict[str, Any]]


class ClusterReader(Discovery):
    """Discovery and lists for one cluster. `cache_key` (the cluster and its server
    version) shares resolved kinds across readers and worker processes; without it,
    discovery is kept for this reader only."""

    # Reading and writing objects -----------------------------------------------------------

    def list(self, group: str, kind: str) -> list[dict[str, Any]]:
        """Every object of the kind (all namespaces), as plain dicts with apiVersion and
        kind set. A kind the cluster does not serve lists as empty."""
        served = self.resource(group, kind)
        if served is None:
            return []
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = {"limit": str(PAGE), **({"continue": token} if token else {})}
            try:
                page = get_json(self.api, served.path(), query)
            except ApiException as error:
                if error.status in (404, 405):
                    self.forget()
                    return []
                raise classify(error) from None
            except Exception as error:
                raise classify(error) from None
            for item in page.get("items") or []:
                item.setdefault("apiVersion", served.group_version)
                item.setdefault("kind", kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def list_kinds(
        self, kinds: Kinds
    ) -> tuple[dict[Kind, Objects], dict[Kind, bool], dict[Kind, str]]:
        """Each kind listed once: (objects, namespaced, failed) by (group, kind). A kind that
        fails is remembered with why, so only the policies needing it get an error. The
        hub's evaluation and a pull cluster's agent both read this way."""
        objects: dict[Kind, Objects] = {}
        namespaced: dict[Kind, bool] = {}
        failed: dict[Kind, str] = {}
        try:
            served = self.resolve(kinds)
        except ClusterConnectError as error:
            served, failed = {}, dict.fromkeys(kinds, error.message)
        for key, resource in served.items():
            try:
                namespaced[key] = bool(resource is not None and resource.namespaced)
                objects[key] = self.list(*key)
            except ClusterConnectError as error:
                failed[key] = error.message
        return objects, namespaced, failed

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        """Delete one object, its kind matched in any version the cluster serves; False if
        it was already gone."""
        served = self.resource(api_version.rpartition("/")[0], kind)
        if served is None:
            return False
        try:
            return delete_served(self.api, served, namespace, name)
        except Exception as error:
            raise classify(error) from None

    def namespaced(self, group: str, kind: str) -> bool:
        served = self.resource(group, kind)
        return bool(served is not None and served.namespaced)

    def version(self) -> dict[str, Any]:
        info = self._get("/version")
        return {
            "major": info.get("major", ""),
            "minor": info.get("minor", ""),
            "gitVersion": info.get("gitVersion", ""),
        }
