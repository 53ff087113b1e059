"""A refused call keeps the API server's own explanation, never a secret (issue 19).

Bodies below are `Status` objects in the shape kube-apiserver sends for a refusal
(k8s.io/apimachinery metav1.Status: kind, apiVersion, status "Failure", message, reason,
code); the messages are the apiserver's wording for these cases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError, api_exception

from kube.apply import apply_manifest
from kube.client import classify, safe_server_text
from localkube.env import LocalCluster


class _Response:
    def __init__(self, status: int, reason: str, body: dict[str, Any]) -> None:
        self.status, self.reason = status, reason
        self.data = json.dumps(body).encode()
        self.headers = {"Authorization": "Bearer should-never-show"}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def test_not_found_keeps_the_servers_message() -> None:
    message = 'deployments.apps "web" not found'
    error = ApiException(http_resp=_Response(404, "Not Found", _status(404, "NotFound", message)))
    classified = classify(error)
    assert classified.code == "error"
    assert classified.message == f"The API server answered 404 Not Found: {message}"


def test_forbidden_says_what_rbac_refused() -> None:
    message = (
        'deployments.apps is forbidden: User "system:serviceaccount:keelson:hub" cannot create '
        'resource "deployments" in API group "apps" in the namespace "shop"'
    )
    error = api_exception(
        ApiException(http_resp=_Response(403, "Forbidden", _status(403, "Forbidden", message)))
    )
    classified = classify(error)  # the dynamic client's ForbiddenError carries the body too
    assert classified.code == "forbidden"
    assert classified.message.endswith(f"(403 Forbidden): {message}")
    assert "should-never-show" not in classified.message  # headers never travel


def test_unprocessable_object_says_which_field() -> None:
    message = (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"x"}: `selector` does not match template `labels`'
    )
    error = ApiException(
        http_resp=_Response(422, "Unprocessable Entity", _status(422, "Invalid", message))
    )
    classified = classify(error)
    assert classified.code == "invalid"
    assert "does not match template" in classified.message
    assert "422 Unprocessable Entity" in classified.message


def test_a_kind_the_cluster_does_not_serve_is_named() -> None:
    # what kubernetes.dynamic's discoverer raises for batch/v1 CronJob on a 1.20 cluster
    error = ResourceNotFoundError(
        "No matches found for {'api_version': 'batch/v1', 'kind': 'CronJob'}"
    )
    classified = classify(error)
    assert classified.code == "invalid" and not classified.transient
    assert "ResourceNotFoundError" not in classified.message
    assert "does not serve this kind" in classified.message and "'CronJob'" in classified.message


def test_tokens_echoed_by_a_server_are_redacted() -> None:
    jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"
    text = safe_server_text(
        f"webhook denied: token {jwt} and Bearer abc.def and key "
        "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI7MDENGbPxRfiCY in my-very-long-deployment-name-for-shop"
    )
    assert jwt not in text and "abc.def" not in text and "AKIAIOSFODNN7" not in text
    assert "my-very-long-deployment-name-for-shop" in text  # object names stay readable
    assert len(safe_server_text("x " * 1000)) == 300
    assert "\n" not in safe_server_text("line one\nline two")


@pytest.mark.kube
def test_a_real_api_servers_refusal_reaches_the_message(kube_cluster: LocalCluster) -> None:
    # given a Deployment whose selector does not match its template (the apiserver's
    # validation refuses it with 422 and names the field)
    api = kube_cluster.control_plane.api_client()
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "mismatch", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            },
        },
    }
    # when / then
    with pytest.raises(Exception) as raised:
        apply_manifest(api, bad)
    assert "does not match template" in str(raised.value)
    assert "Unexpected error" not in str(raised.value)
