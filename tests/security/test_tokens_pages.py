"""The API tokens page and the password change page (issue 21, item 12)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.tokens import api_token_create
from audit.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db
TOKENS = "/accounts/tokens/"
PASSWORD = "/accounts/password/"
NEW_PASSWORD = "a brand new passphrase 42"


def logged_in(username: str, password: str) -> Client:
    client = Client()
    assert client.login(username=username, password=password)
    return client


def api_works(secret: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/api/v1/teams/").status_code == 200


def test_the_page_shows_a_new_secret_once() -> None:
    make_user(username="alice")
    client = logged_in("alice", "pw-alice")
    # when
    response = client.post(TOKENS, {"do": "create", "name": "laptop", "scope": "write"})
    # then: shown in this answer, which nothing may cache
    assert response.status_code == 200
    secret = re.search(r'id="token-secret">(kls_[^<]+)<', response.content.decode())
    assert secret is not None
    assert "no-store" in response["Cache-Control"]
    assert api_works(secret.group(1))
    # and never again
    assert secret.group(1) not in client.get(TOKENS).content.decode()
    assert ApiToken.objects.get().scope == "write"


def test_the_page_rotates_and_revokes_only_your_own_tokens() -> None:
    alice, bob = make_user(username="alice"), make_user(username="bob")
    bobs = api_token_create(user=bob, name="bob's", scope="read")
    client = logged_in("alice", "pw-alice")
    # alice names bob's token in her form: nothing happens to it
    for do in ("rotate", "revoke"):
        response = client.post(TOKENS, {"do": do, "token": bobs.token.pk})
        assert response.status_code == 302
    assert api_works(bobs.secret)
    assert ApiToken.objects.filter(user=bob).count() == 1
    # her own token: rotated (old secret dead), then revoked
    mine = api_token_create(user=alice, name="mine", scope="read")
    rotated = client.post(TOKENS, {"do": "rotate", "token": mine.token.pk})
    new = re.search(r'id="token-secret">(kls_[^<]+)<', rotated.content.decode())
    assert new is not None and not api_works(mine.secret) and api_works(new.group(1))
    live = ApiToken.objects.get(user=alice, revoked_at=None)
    client.post(TOKENS, {"do": "revoke", "token": live.pk})
    assert not api_works(new.group(1))
    assert not ApiToken.objects.filter(user=alice, revoked_at=None).exists()


def test_the_page_refuses_a_lifetime_past_the_maximum(settings: Any) -> None:
    settings.KEELSON_API_TOKEN_MAX_DAYS = 30
    make_user(username="alice")
    client = logged_in("alice", "pw-alice")
    response = client.post(TOKENS, {"do": "create", "name": "x", "expires_in_days": 31})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_changing_the_password_ends_the_other_sessions_only() -> None:
    # given: alice signed in twice (laptop, and an attacker holding a stolen session)
    make_user(username="alice")
    laptop = logged_in("alice", "pw-alice")
    stolen = logged_in("alice", "pw-alice")
    assert stolen.get(TOKENS).status_code == 200
    # when
    response = laptop.post(
        PASSWORD,
        {
            "old_password": "pw-alice",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    # then
    assert response.status_code == 302
    assert laptop.get(TOKENS).status_code == 200  # this session goes on
    after = stolen.get(TOKENS)
    assert after.status_code == 302 and after["Location"].startswith("/accounts/login/")
    assert Client().login(username="alice", password=NEW_PASSWORD)
    event = AuditEvent.objects.get(action="account.password_change")
    assert NEW_PASSWORD not in json.dumps(event.detail)


@pytest.mark.parametrize("revoke", [True, False])
def test_changing_the_password_revokes_tokens_when_asked(revoke: bool) -> None:
    alice = make_user(username="alice")
    issued = api_token_create(user=alice, name="ci", scope="read")
    client = logged_in("alice", "pw-alice")
    form = {
        "old_password": "pw-alice",
        "new_password1": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
    }
    if revoke:
        form["revoke_tokens"] = "on"
    assert client.post(PASSWORD, form).status_code == 302
    assert api_works(issued.secret) is not revoke
    assert AuditEvent.objects.get(action="account.password_change").detail == {
        "revoked": 1 if revoke else 0
    }


def test_a_wrong_old_password_changes_nothing() -> None:
    alice = make_user(username="alice")
    issued = api_token_create(user=alice, name="ci", scope="read")
    client = logged_in("alice", "pw-alice")
    response = client.post(
        PASSWORD,
        {
            "old_password": "guess",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "revoke_tokens": "on",
        },
    )
    assert response.status_code == 400
    assert Client().login(username="alice", password="pw-alice")
    assert api_works(issued.secret)
    assert ApiToken.objects.get().expires_at > timezone.now()
