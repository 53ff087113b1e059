"""The REST API: authentication, per-object authorization, JSON errors, audited refusals."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from operations.services import operation_create
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_anonymous_requests_get_401_json_and_are_audited() -> None:
    response = APIClient().get("/api/v1/operations/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert "Authentication credentials" in response.json()["error"]["message"]
    assert AuditEvent.objects.filter(
        action="request.denied", request_path="/api/v1/operations/"
    ).exists()


def test_token_authentication() -> None:
    user = make_user()
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/operations/").status_code == 200


def test_operations_are_visible_to_owner_and_team_members_not_outsiders(
    django_assert_max_num_queries: object,
) -> None:
    # given
    owner, member, outsider = make_user(), make_user(), make_user()
    team = make_team()
    add_member(team, owner, Role.OPERATOR)
    add_member(team, member, Role.VIEWER)
    operation = operation_create(kind="cluster.provision", created_by=owner, team=team)
    url = f"/api/v1/operations/{operation.pk}/"
    # then
    assert _client(owner).get(url).status_code == 200
    assert _client(member).get(url).status_code == 200
    assert _client(outsider).get(url).status_code == 404
    assert _client(outsider).get("/api/v1/operations/").json()["count"] == 0
    with django_assert_max_num_queries(4):  # type: ignore[operator]
        listing = _client(member).get("/api/v1/operations/")
    assert [item["id"] for item in listing.json()["results"]] == [str(operation.pk)]


def test_cancel_needs_operator_role_and_refusal_is_audited() -> None:
    # given
    owner, viewer = make_user(), make_user()
    team = make_team()
    add_member(team, viewer, Role.VIEWER)
    operation = operation_create(kind="cluster.provision", created_by=owner, team=team)
    url = f"/api/v1/operations/{operation.pk}/cancel/"
    # when a viewer tries
    refused = _client(viewer).post(url)
    # then
    assert refused.status_code == 403
    assert refused.json()["error"]["message"].startswith("Only the operation's creator")
    denied = AuditEvent.objects.get(action="request.denied", actor_name=viewer.username)
    assert denied.outcome == "denied"
    # when the creator cancels
    accepted = _client(owner).post(url)
    # then
    assert accepted.status_code == 202
    assert accepted.json()["state"] == "canceled"
    assert (
        _client(owner)
        .post(url)
        .json()["error"]["message"]
        .startswith("The operation has already ended")
    )


def test_invalid_filter_gets_a_json_400() -> None:
    response = _client(make_user()).get("/api/v1/operations/?state=exploded")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["state"]


def test_teams_and_members() -> None:
    # given
    admin = make_user(superuser=True)
    alice = make_user(username="alice")
    # when
    created = _client(admin).post("/api/v1/teams/", {"name": "payments"}, format="json")
    added = _client(admin).post(
        "/api/v1/teams/payments/members/", {"username": "alice", "role": "operator"}, format="json"
    )
    # then
    assert created.status_code == 201
    assert added.json() == [
        {
            "username": "alice",
            "role": "operator",
            "source": "local",
            "last_login": None,
            "created_at": added.json()[0]["created_at"],
        }
    ]
    assert _client(alice).post("/api/v1/teams/", {"name": "x"}, format="json").status_code == 403
    assert (
        _client(alice)
        .post(
            "/api/v1/teams/payments/members/", {"username": "alice", "role": "admin"}, format="json"
        )
        .status_code
        == 403
    )
    assert AuditEvent.objects.filter(action="team.member_add", team__name="payments").exists()


def test_bad_team_name_is_rejected_with_a_field_message() -> None:
    response = _client(make_user(superuser=True)).post(
        "/api/v1/teams/", {"name": "Not A Slug"}, format="json"
    )
    assert response.status_code == 400
    assert "lowercase" in response.json()["error"]["message"]


def test_openapi_schema_is_served() -> None:
    response = _client(make_user()).get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/operations/" in response.json()["paths"]
