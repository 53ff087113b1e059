from __future__ import annotations

import pytest
from django.test import Client

from operations.services import operation_create, operation_update
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_login_and_logout(client: Client) -> None:
    make_user(username="ops")
    assert client.get("/").status_code == 302
    response = client.post("/accounts/login/", {"username": "ops", "password": "pw-ops"})
    assert response.status_code == 302
    page = client.get("/")
    assert b"Register your first cluster" in page.content
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_wrong_password_says_so(client: Client) -> None:
    make_user(username="ops")
    response = client.post("/accounts/login/", {"username": "ops", "password": "nope"})
    assert b"didn't match" in response.content


def test_operation_page_and_htmx_fragment(client: Client) -> None:
    user = make_user()
    operation = operation_create(kind="cluster.provision", created_by=user)
    operation_update(operation_id=operation.pk, progress=30, log="creating etcd")
    client.force_login(user)
    page = client.get(f"/operations/{operation.pk}/")
    assert page.status_code == 200
    assert b'value="30"' in page.content and b"<html" in page.content
    fragment = client.get(f"/operations/{operation.pk}/", HTTP_HX_REQUEST="true")
    assert b"<html" not in fragment.content and b"creating etcd" in fragment.content


def test_other_peoples_operation_is_not_found(client: Client) -> None:
    operation = operation_create(kind="x", created_by=make_user())
    client.force_login(make_user())
    assert client.get(f"/operations/{operation.pk}/").status_code == 404
