"""API tokens (issue 21, item 12): stored hashed, scoped, expiring, revocable; each attack
below was possible (or the endpoint missing) before the fix.

Expectations are worked out by hand: the stored digest is SHA-256 of the secret computed
here with hashlib; scopes cap roles as read → viewer, write → operator, admin → none.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from django.urls import URLResolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.authentication import ApiTokenAuthentication, TokenScopeAllows
from accounts.choices import Role
from accounts.models import ApiToken, Membership
from accounts.tokens import api_token_create
from audit.models import AuditEvent
from fleet.api import urls as api_urls
from tests.factories import add_member, make_team, make_user

API = "/api/v1/"
pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def admin_of_team() -> tuple[Any, Any]:
    user = make_user(username="alice")
    team = make_team(name="red")
    add_member(team, user, Role.ADMIN)
    bob = make_user(username="bob")
    # A team admin may add only people who share a team with them (no username oracle).
    shared = make_team(name="shared")
    add_member(shared, user, Role.VIEWER)
    add_member(shared, bob, Role.VIEWER)
    return user, team


def _secret(user: Any, scope: str, **kw: Any) -> str:
    return api_token_create(user=user, name=f"{scope} token", scope=scope, **kw).secret


def test_a_token_is_shown_once_and_stored_only_as_its_sha256(admin_of_team: Any) -> None:
    user, _ = admin_of_team
    # given / when: created through the API with the user's session
    response = session(user).post(
        API + "tokens/", {"name": "ci", "scope": "write", "expires_in_days": 30}, format="json"
    )
    # then
    assert response.status_code == 201, response.content
    secret = response.json()["secret"]
    assert secret.startswith("kls_") and len(secret) >= 40
    row = ApiToken.objects.get(pk=response.json()["id"])
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[:10] and secret not in json.dumps(
        list(ApiToken.objects.values()), default=str
    )
    # 30 days, give or take the test's own run time
    assert abs((row.expires_at - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)
    # never shown again: not in the list, the detail, the audit
    shown = (
        session(user).get(API + "tokens/").content
        + session(user).get(API + f"tokens/{row.pk}/").content
    )
    assert secret.encode() not in shown and b"secret" not in shown
    events = list(AuditEvent.objects.filter(action="token.create").values())
    assert len(events) == 1 and secret not in json.dumps(events, default=str)
    assert events[0]["detail"]["prefix"] == secret[:10]
    # and it works
    assert bearer(secret).get(API + "teams/").status_code == 200


def test_default_lifetime_and_the_maximum(admin_of_team: Any, settings: Any) -> None:
    user, _ = admin_of_team
    settings.KEELSON_API_TOKEN_DEFAULT_DAYS = 90
    settings.KEELSON_API_TOKEN_MAX_DAYS = 180
    client = session(user)
    default = client.post(API + "tokens/", {"name": "d"}, format="json").json()
    assert default["scope"] == "read"  # the narrowest unless asked
    expires = ApiToken.objects.get(pk=default["id"]).expires_at
    assert abs((expires - timezone.now()) - timedelta(days=90)) < timedelta(minutes=1)
    too_long = client.post(API + "tokens/", {"name": "x", "expires_in_days": 181}, format="json")
    assert too_long.status_code == 400
    assert too_long.json()["error"]["message"] == "expires_in_days: Choose 1 to 180 days."
    assert ApiToken.objects.count() == 1


def test_a_read_token_cannot_write(admin_of_team: Any) -> None:
    user, team = admin_of_team
    client = bearer(_secret(user, "read"))
    assert client.get(API + f"teams/{team.name}/members/").status_code == 200
    # when: the team admin's read token tries to make bob an admin
    response = client.post(
        API + f"teams/{team.name}/members/", {"username": "bob", "role": "admin"}, format="json"
    )
    # then
    assert response.status_code == 403
    assert "read scope" in response.json()["error"]["message"]
    assert not Membership.objects.filter(user__username="bob", team__name="red").exists()
    # the refusal is audited under the token's user
    assert AuditEvent.objects.filter(
        action="request.denied", actor_name="alice", request_method="POST"
    ).exists()


def test_every_api_view_that_takes_tokens_checks_the_scope() -> None:
    """A view that sets its own permission classes would drop TokenScopeAllows, and a read
    token could write through it."""
    checked = 0

    def walk(patterns: list[Any]) -> None:
        nonlocal checked
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
                continue
            callback: Any = pattern.callback
            cls: Any = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            initkwargs = getattr(callback, "initkwargs", {}) or {}
            auth = initkwargs.get(
                "authentication_classes", getattr(cls, "authentication_classes", [])
            )
            if ApiTokenAuthentication not in auth:
                continue
            permissions = initkwargs.get("permission_classes", cls.permission_classes)
            assert TokenScopeAllows in permissions, pattern.name
            checked += 1

    walk(list(api_urls.urlpatterns))
    assert checked > 50  # every router route, not a vacuous pass


def test_a_write_token_cannot_do_what_needs_the_admin_role(admin_of_team: Any) -> None:
    user, team = admin_of_team
    body = {"username": "bob", "role": "viewer"}
    path = API + f"teams/{team.name}/members/"
    # a team admin's write token acts as an operator: member changes need admin
    assert bearer(_secret(user, "write")).post(path, body, format="json").status_code == 403
    assert not Membership.objects.filter(user__username="bob", team__name="red").exists()
    # the same user's admin token may
    assert bearer(_secret(user, "admin")).post(path, body, format="json").status_code == 200
    assert Membership.objects.filter(user__username="bob", team__name="red", role="viewer").exists()


def test_a_token_never_grants_more_than_its_user_has(admin_of_team: Any) -> None:
    _, team = admin_of_team
    viewer = make_user(username="vic")
    add_member(team, viewer, Role.VIEWER)
    response = bearer(_secret(viewer, "admin")).post(
        API + f"teams/{team.name}/members/", {"username": "bob", "role": "admin"}, format="json"
    )
    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="bob", team__name="red").exists()


def test_superuser_powers_need_an_admin_token() -> None:
    root = make_user(username="root", superuser=True)
    refused = bearer(_secret(root, "write")).post(API + "teams/", {"name": "new"}, format="json")
    assert refused.status_code == 403
    created = bearer(_secret(root, "admin")).post(API + "teams/", {"name": "new"}, format="json")
    assert created.status_code == 201


def test_a_token_cannot_mint_a_wider_token(admin_of_team: Any) -> None:
    user, _ = admin_of_team
    client = bearer(_secret(user, "write"))
    wider = client.post(API + "tokens/", {"name": "up", "scope": "admin"}, format="json")
    assert wider.status_code == 403
    assert (
        client.post(API + "tokens/", {"name": "same", "scope": "write"}, format="json").status_code
        == 201
    )
    assert not ApiToken.objects.filter(name="up").exists()


@pytest.mark.parametrize("state", ["expired", "revoked", "unknown", "user-deactivated"])
def test_a_dead_token_gets_401(admin_of_team: Any, state: str) -> None:
    user, _ = admin_of_team
    secret = _secret(user, "admin")
    row = ApiToken.objects.get()
    if state == "expired":
        ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif state == "revoked":
        assert session(user).delete(API + f"tokens/{row.pk}/").status_code == 204
    elif state == "unknown":
        secret = secret[:-2] + ("aa" if not secret.endswith("aa") else "bb")
    else:
        user.is_active = False
        user.save()
    response = bearer(secret).get(API + "teams/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid, expired or revoked token."


def test_rotation_kills_the_old_secret(admin_of_team: Any) -> None:
    user, _ = admin_of_team
    old = _secret(user, "write")
    row = ApiToken.objects.get()
    response = bearer(old).post(API + f"tokens/{row.pk}/rotate/")
    assert response.status_code == 201
    new = response.json()["secret"]
    assert new != old and response.json()["scope"] == "write"
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["token.create", "token.rotate"]
    assert new not in json.dumps(list(AuditEvent.objects.values()), default=str)
    assert bearer(old).get(API + "teams/").status_code == 401
    assert bearer(new).get(API + "teams/").status_code == 200


def test_nobody_sees_or_changes_another_users_tokens(admin_of_team: Any) -> None:
    user, _ = admin_of_team
    secret = _secret(user, "admin")
    row = ApiToken.objects.get()
    mallory = session(make_user(username="mallory"))
    assert mallory.get(API + "tokens/").json()["results"] == []
    assert mallory.get(API + f"tokens/{row.pk}/").status_code == 404
    assert mallory.post(API + f"tokens/{row.pk}/rotate/").status_code == 404
    assert mallory.delete(API + f"tokens/{row.pk}/").status_code == 404
    assert bearer(secret).get(API + "teams/").status_code == 200


def test_last_use_is_written_at_most_once_a_minute(admin_of_team: Any) -> None:
    user, _ = admin_of_team
    client = bearer(_secret(user, "read"))
    client.get(API + "teams/")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    thirty_ago = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.update(last_used_at=thirty_ago)
    client.get(API + "teams/")
    assert ApiToken.objects.get().last_used_at == thirty_ago  # not rewritten within a minute
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(seconds=61))
    client.get(API + "teams/")
    latest = ApiToken.objects.get().last_used_at
    assert latest is not None and latest > thirty_ago


def test_a_legacy_drf_token_keeps_working_and_loses_its_plaintext(admin_of_team: Any) -> None:
    user, _ = admin_of_team
    legacy = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {legacy.key}")
    assert client.get(API + "teams/").status_code == 200
    # the plaintext row is gone; the key lives on as its digest, with the user's full rights
    assert not Token.objects.exists()
    row = ApiToken.objects.get(token_hash=hashlib.sha256(legacy.key.encode()).hexdigest())
    assert (row.user_id, row.scope) == (user.pk, "admin")
    assert client.get(API + "teams/").status_code == 200
