"""What an apply error shows of the API server's answer: its reason, made safe to show."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from kube.apply import object_error

REF = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"}
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def _refused(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="Refused")
    error.body = json.dumps({"kind": "Status", "message": message}).encode()
    return error


def test_a_refused_object_shows_the_servers_reason_on_one_line() -> None:
    error = object_error(
        _refused(422, 'Deployment.apps "web" is invalid:\nspec.replicas: must be >= 0'), REF
    )
    assert error.message == (
        'Deployment/shop/web: Deployment.apps "web" is invalid: spec.replicas: must be >= 0'
    )


def test_a_token_the_server_echoes_never_reaches_the_message() -> None:
    error = object_error(_refused(400, f"bad annotation: Bearer {JWT} in metadata"), REF)
    assert JWT not in error.message
    assert "[redacted]" in error.message
    assert error.message.startswith("Deployment/shop/web: bad annotation:")


def test_a_401_keeps_the_credential_wording_not_the_servers_text() -> None:
    error = object_error(_refused(401, f"token {JWT} expired for user admin"), REF)
    assert "admin" not in error.message and JWT not in error.message
    assert "rejected the credentials (401 Unauthorized)" in error.message
