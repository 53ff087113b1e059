"""Issue 21 #9: parallel password guesses cannot outrun the failure limit, and the Django
admin's login is no way around it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from tests.factories import make_user

LIMIT = 5


@pytest.fixture(autouse=True)
def _fresh_counters(settings: object) -> Iterator[None]:
    settings.KEELSON_LOGIN_MAX_FAILURES = LIMIT  # type: ignore[attr-defined]
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True)
def test_forty_parallel_guesses_get_only_the_allowed_checks() -> None:
    # given a user, and 40 wrong guesses sent at the same instant
    make_user(username="alice")
    guesses = [f"wrong-{i}" for i in range(40)]
    statuses: list[int] = []
    start = threading.Barrier(len(guesses))

    def guess(password: str) -> None:
        client = Client()
        start.wait()
        try:
            response = client.post("/accounts/login/", {"username": "alice", "password": password})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(p,)) for p in guesses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then at most LIMIT passwords were checked (200: wrong); all others 429
    assert len(statuses) == 40
    checked = [s for s in statuses if s != 429]
    assert len(checked) <= LIMIT, sorted(statuses)
    assert statuses.count(429) >= 40 - LIMIT
    # and the right password, sent next, is not even checked. (A right guess among the
    # parallel ones would log in and clear the count, as a success should: that is why
    # the guesses above are all wrong, or the bound would depend on the order they ran.)
    response = Client().post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 429


@pytest.mark.django_db
def test_the_admin_login_is_the_app_login_with_its_limit() -> None:
    make_user(username="root", superuser=True)
    client = Client()

    # a right password posted to the admin's login does not log in: it is sent to the app's
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "pw-root"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    assert client.get("/admin/").status_code == 302  # still anonymous

    # and the app's login counts the guesses of the superuser like anyone's
    for _ in range(LIMIT):
        client.post("/accounts/login/", {"username": "root", "password": "guess"})
    blocked = client.post(
        "/accounts/login/?next=/admin/", {"username": "root", "password": "pw-root"}
    )
    assert blocked.status_code == 429
