"""Writing objects into a cluster: the one server-side apply path (field manager `keelson`,
conflicts forced: Keelson owns what it declares), and reading back or deleting one object
by its apiVersion and kind. Where each kind lives comes from `kube.discovery`; requests go
through the cluster's ApiClient pool (`kube.client.request_json`): same TLS, auth,
timeouts and error classification as every other call."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.client import ClusterConnectError, classify, request_json, status_message
from kube.discovery import ServedKind, discovery_for
from kube.objects import delete_served
from kube.ownership import FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, object_ref, ref_key

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON


def with_ownership(manifest: dict[str, Any], owner_labels: dict[str, str]) -> dict[str, Any]:
    """A copy of `manifest` labelled as Keelson's (plus the owner's labels)."""
    body = copy.deepcopy(manifest)
    labels = body.setdefault("metadata", {}).setdefault("labels", {}) or {}
    labels.update({MANAGED_BY_LABEL: MANAGED_BY_VALUE, **owner_labels})
    body["metadata"]["labels"] = labels
    return body


def object_error(error: Exception, ref: dict[str, str]) -> ClusterConnectError:
    """A ClusterConnectError naming the object, with the server's reason where it gave one."""
    if isinstance(error, ClusterConnectError):
        return ClusterConnectError(error.code, f"{ref_key(ref)}: {error.message}")
    classified = classify(error)
    status = getattr(error, "status", None) or 0
    # The server's own reason (422 and the like), made safe to show: one line, short,
    # nothing token-like. A 401 keeps classify's wording, which names no credential.
    if status >= 400 and status != 401:
        detail = status_message(getattr(error, "body", None))
        if detail:
            return ClusterConnectError(classified.code, f"{ref_key(ref)}: {detail}")
    return ClusterConnectError(classified.code, f"{ref_key(ref)}: {classified.message}")


def served_kind(api: k8s.ApiClient, api_version: str, kind: str) -> ServedKind | None:
    """Where the cluster serves `kind` in `api_version`, or None (discovery errors are
    ClusterConnectError)."""
    return discovery_for(api).served(api_version, kind)


def _where(api: k8s.ApiClient, ref: dict[str, str]) -> ServedKind:
    served = served_kind(api, ref["apiVersion"], ref["kind"])
    if served is None:
        # Permanent until the cluster serves it: CronJob is batch/v1beta1 on 1.20, or a
        # CRD is missing.
        raise ClusterConnectError(
            "invalid", f"The API server does not serve {ref['kind']} in {ref['apiVersion']}."
        )
    return served


def server_side_apply(api: k8s.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply one object as it is; returns the object the server now holds.
    Errors are ClusterConnectError naming the object."""
    ref = object_ref(body)
    try:
        served = _where(api, ref)
        applied = request_json(
            api,
            "PATCH",
            served.path(ref["namespace"], ref["name"]),
            {"fieldManager": FIELD_MANAGER, "force": "true"},
            body,
            content_type=APPLY_CONTENT_TYPE,
        )
    except Exception as error:
        raise object_error(error, ref) from None
    return dict(applied or {})


def apply_manifest(
    api: k8s.ApiClient, manifest: dict[str, Any], *, owner_labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """Server-side apply one manifest labelled as Keelson's (and its owner's)."""
    return server_side_apply(api, with_ownership(manifest, owner_labels or {}))


def get_object(api: k8s.ApiClient, ref: dict[str, str]) -> dict[str, Any] | None:
    """The object as the server holds it, or None if there is none."""
    try:
        served = _where(api, ref)
        found = request_json(api, "GET", served.path(ref["namespace"], ref["name"]))
    except ApiException as error:
        if error.status == 404:
            return None
        raise object_error(error, ref) from None
    except Exception as error:
        raise object_error(error, ref) from None
    return dict(found or {})


def delete_object(
    api: k8s.ApiClient, ref: dict[str, str], *, propagation: str = "Background"
) -> bool:
    """Delete one object by its apiVersion and kind; False if it was gone already (or its
    kind is no longer served: a CRD removed)."""
    try:
        served = served_kind(api, ref["apiVersion"], ref["kind"])
        if served is None:
            return False
        return delete_served(api, served, ref["namespace"], ref["name"], propagation=propagation)
    except Exception as error:
        raise object_error(error, ref) from None
