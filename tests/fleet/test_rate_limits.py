"""Rate limits on the login page and the agent's token endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def test_repeated_failed_logins_are_refused_for_a_while(settings: object) -> None:
    make_user(username="alice")
    client = Client()
    for _ in range(5):
        failed = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        assert failed.status_code == 200
    # the sixth attempt is refused, even with the right password
    blocked = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.content.decode()
    assert AuditEvent.objects.filter(
        action="request.denied", detail__reason="too many failed logins"
    ).exists()
    # another user name from the same address is not affected
    make_user(username="bob")
    ok = client.post("/accounts/login/", {"username": "bob", "password": "pw-bob"})
    assert ok.status_code == 302


def test_a_successful_login_resets_the_count() -> None:
    make_user(username="carol")
    client = Client()
    for _ in range(4):
        client.post("/accounts/login/", {"username": "carol", "password": "wrong"})
    assert (
        client.post("/accounts/login/", {"username": "carol", "password": "pw-carol"}).status_code
        == 302
    )
    client.logout()
    for _ in range(4):
        client.post("/accounts/login/", {"username": "carol", "password": "wrong"})
    assert (
        client.post("/accounts/login/", {"username": "carol", "password": "pw-carol"}).status_code
        == 302
    )


def test_agent_token_endpoints_are_rate_limited() -> None:
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/agent/enroll", {"bootstrap_token": f"kbt_guess{i}"}, format="json"
        ).status_code
        for i in range(12)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    assert (
        "throttled"
        in client.post("/api/v1/agent/enroll", {"bootstrap_token": "x"}, format="json").json()[
            "error"
        ]["code"]
    )
