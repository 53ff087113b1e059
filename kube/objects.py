"""Calls on one object where discovery found its kind (`kube.discovery.ServedKind`),
shared by apply and prune (`kube/apply.py`), cleanup (`kube/ownership.py`) and policy
enforcement (`policies/kube.py`)."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.client import request_json
from kube.discovery import ServedKind


def delete_served(
    api: k8s.ApiClient,
    served: ServedKind,
    namespace: str,
    name: str,
    *,
    propagation: str = "Background",
) -> bool:
    """Delete one object where discovery found its kind; False if it was gone already.
    A refusal raises the client's ApiException (callers name the object)."""
    try:
        request_json(
            api, "DELETE", served.path(namespace, name), body={"propagationPolicy": propagation}
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
