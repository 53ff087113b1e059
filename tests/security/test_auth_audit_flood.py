"""Issue 21 #14: anonymous 401s cannot flood the audit table; they are aggregated per
address and path and window, with a count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from audit import services as audit_services
from audit.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db


class _Clock:
    now = 1_000_000.0  # the start of a 60 s window

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Clock]:
    cache.clear()
    fake = _Clock()
    monkeypatch.setattr(audit_services, "time", fake)
    yield fake
    cache.clear()


def _anonymous(path: str, addr: str = "203.0.113.7") -> Any:
    return APIClient().get(path, REMOTE_ADDR=addr)


def _denied() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="request.denied").order_by("id"))


def test_a_flood_of_anonymous_401s_writes_one_row_per_address_path_and_window(
    clock: _Clock,
) -> None:
    # when one address sends 200 anonymous requests to one path within a minute
    for _ in range(200):
        assert _anonymous("/api/v1/clusters/").status_code == 401

    # then one row records it; another address and another path have their own
    [row] = _denied()
    assert (row.remote_addr, row.request_path) == ("203.0.113.7", "/api/v1/clusters/")
    assert row.detail["window_seconds"] == 60
    _anonymous("/api/v1/clusters/", addr="198.51.100.1")
    _anonymous("/api/v1/policies/")
    assert len(_denied()) == 3

    # when the next window starts, its first row carries the previous window's count
    clock.now += 60
    _anonymous("/api/v1/clusters/")
    newest = _denied()[-1]
    assert newest.detail["previous_window_count"] == 200


def test_varying_the_path_is_capped_per_address(clock: _Clock) -> None:
    for i in range(50):
        _anonymous(f"/api/v1/clusters/c{i}/")
    assert len(_denied()) == audit_services.ANONYMOUS_ROWS_PER_ADDRESS == 20


def test_refusals_of_signed_in_users_are_each_recorded(clock: _Clock) -> None:
    user = make_user()
    client = APIClient()
    client.force_authenticate(user)
    for _ in range(3):
        assert client.get("/api/v1/teams/nope/members/").status_code in (403, 404)
        assert client.post("/api/v1/policies/", {"team": "nope"}, format="json").status_code == 403
    assert len(_denied()) >= 3
    assert all(row.actor_id == user.pk for row in _denied())
