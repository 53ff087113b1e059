"""Issue 21 #17: adding a member is no way for a team admin to learn which user names
exist; an administrator still adds anyone."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Membership
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _add(client: APIClient, username: str) -> Any:
    return client.post(
        "/api/v1/teams/payments/members/", {"username": username, "role": "viewer"}, format="json"
    )


def test_a_team_admin_cannot_tell_an_existing_stranger_from_nobody() -> None:
    # given a team admin, a stranger in another team, and a colleague from a shared team
    payments, shared = make_team(name="payments"), make_team(name="shared")
    admin = make_user(username="pat")
    add_member(payments, admin, Role.ADMIN)
    add_member(shared, admin, Role.VIEWER)
    make_user(username="stranger")
    colleague = make_user(username="colleague")
    add_member(shared, colleague, Role.VIEWER)
    client = _client(admin)

    # when the admin tries an existing stranger and a name nobody has
    existing, missing = _add(client, "stranger"), _add(client, "no-such-person")

    # then both answers are identical: no oracle, and nobody was added
    assert existing.status_code == missing.status_code == 400
    assert existing.json() == missing.json()
    assert not Membership.objects.filter(team=payments, user__username="stranger").exists()

    # a colleague the admin already shares a team with can be added
    added = _add(client, "colleague")
    assert added.status_code == 200
    assert Membership.objects.filter(team=payments, user=colleague).exists()


def test_an_administrator_adds_anyone() -> None:
    make_team(name="payments")
    make_user(username="newcomer")
    added = _add(_client(make_user(superuser=True)), "newcomer")
    assert added.status_code == 200
    assert [m["username"] for m in added.json()] == ["newcomer"]
