"""Reading a member cluster for policies: kinds resolved by discovery, listed once each."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.dynamic.resource import Resource, ResourceList

from clusters.kube.client import classify, timeout_kwargs

PAGE = 500
# Higher is preferred when the group's preferred version does not serve the kind.
_STABILITY = {"": 3, "beta": 2, "alpha": 1}


def _version_rank(version: str) -> tuple[int, int, int]:
    """v1 > v1beta2 > v1beta1 > v1alpha1, and v2 > v1."""
    number, stage, rest = version.lstrip("v"), "", "0"
    for candidate in ("beta", "alpha"):
        if candidate in number:
            number, rest = number.split(candidate, 1)
            stage = candidate
    return (_STABILITY[stage], int(number or 0), int(rest or 0))


class ClusterReader:
    """Discovery and lists for one cluster (discovery is cached by the dynamic client)."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        try:
            self.dynamic = DynamicClient(api)
        except Exception as error:
            raise classify(error) from None

    def resource(self, group: str, kind: str) -> Resource | None:
        """The served resource for (group, kind) in whichever version the cluster serves
        it (CronJob is batch/v1beta1 on 1.20, batch/v1 later), or None."""
        try:
            found = [
                r
                for r in self.dynamic.resources.search(group=group, kind=kind)
                if not isinstance(r, ResourceList) and "/" not in r.name
            ]
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise classify(error) from None
        if not found:
            return None
        preferred = [r for r in found if getattr(r, "preferred", False)]
        if preferred:
            return preferred[0]
        return max(found, key=lambda r: _version_rank(r.api_version))

    def list(self, group: str, kind: str) -> list[dict[str, Any]]:
        """Every object of the kind (all namespaces), as plain dicts with apiVersion and
        kind set. A kind the cluster does not serve lists as empty."""
        resource = self.resource(group, kind)
        if resource is None:
            return []
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            try:
                page = resource.get(limit=PAGE, _continue=token, **timeout_kwargs()).to_dict()
            except ApiException as error:
                if error.status in (404, 405):
                    return []
                raise classify(error) from None
            except Exception as error:
                raise classify(error) from None
            for item in page.get("items") or []:
                item.setdefault("apiVersion", resource.group_version)
                item.setdefault("kind", kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        group = api_version.rpartition("/")[0]
        resource = self.resource(group, kind)
        if resource is None:
            return None
        try:
            found = resource.get(
                name=name, namespace=namespace if resource.namespaced else None, **timeout_kwargs()
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise classify(error) from None
        except Exception as error:
            raise classify(error) from None
        return dict(found.to_dict())

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        """Delete one object; False if it was already gone."""
        resource = self.resource(api_version.rpartition("/")[0], kind)
        if resource is None:
            return False
        try:
            resource.delete(
                name=name,
                namespace=namespace if resource.namespaced else None,
                body={"propagationPolicy": "Background"},
                **timeout_kwargs(),
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise classify(error) from None
        except Exception as error:
            raise classify(error) from None
        return True

    def namespaced(self, group: str, kind: str) -> bool:
        resource = self.resource(group, kind)
        return bool(resource is not None and resource.namespaced)

    def version(self) -> dict[str, Any]:
        try:
            info = k8s.VersionApi(self.api).get_code(**timeout_kwargs())
        except Exception as error:
            raise classify(error) from None
        return {"major": info.major, "minor": info.minor, "gitVersion": info.git_version}
