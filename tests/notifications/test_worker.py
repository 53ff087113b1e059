"""Deliveries through a real Celery worker: dispatch queues them, the worker sends them,
retries with backoff after failures and dead-letters what keeps failing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.models import Team
from notifications.choices import DeliveryState
from notifications.models import Delivery
from notifications.payloads import signature_valid
from notifications.services import dispatch
from tests.notifications.conftest import Receiver
from tests.notifications.helpers import HMAC_SECRET, grouped, make_channel


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker started after this fixture retries within a second, three times."""
    monkeypatch.setenv("KEELSON_NOTIFY_BACKOFF_SECONDS", "0.3")
    monkeypatch.setenv("KEELSON_NOTIFY_MAX_ATTEMPTS", "3")
    yield


def wait_state(delivery_id: int, states: set[str], timeout: float = 30) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = Delivery.objects.get(pk=delivery_id)
        if delivery.state in states:
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"delivery {delivery_id} is {delivery.state}, not in {states}")


def test_the_worker_retries_then_delivers_and_dead_letters(
    fast_retries: None,
    celery_worker: subprocess.Popen[bytes],
    receiver: Receiver,
    transactional_db: Any,
) -> None:
    # given a team with a signed webhook whose receiver fails twice, then answers
    team = Team.objects.create(name="payments")
    make_channel(team, "webhook", url=f"{receiver.url}/hook", hmac_secret=HMAC_SECRET)
    receiver.answers = [503, 500]
    # when a notification is dispatched (outside a transaction: queued at once)
    assert dispatch(grouped(team)) == 1
    delivery = Delivery.objects.get()
    # then the worker tries three times and the third goes through
    requests = receiver.wait_for(3)
    delivered = wait_state(delivery.pk, {DeliveryState.DELIVERED, DeliveryState.DEAD})
    assert delivered.state == DeliveryState.DELIVERED
    assert delivered.attempts == 3
    assert all(
        signature_valid(HMAC_SECRET, r.body, r.headers["X-Keelson-Signature"]) for r in requests
    )
    # every attempt carries the same delivery id, signed anew
    assert {r.headers["X-Keelson-Delivery"] for r in requests} == {str(delivery.pk)}

    # when the receiver keeps failing
    receiver.answers = [500, 500, 500]
    assert dispatch(grouped(team, status="resolved")) == 1
    second = Delivery.objects.exclude(pk=delivery.pk).get()
    # then after three attempts it is a dead letter
    dead = wait_state(second.pk, {DeliveryState.DEAD, DeliveryState.DELIVERED})
    assert dead.state == DeliveryState.DEAD
    assert dead.attempts == 3
    assert dead.last_error == "127.0.0.1 answered HTTP 500."
    assert len(receiver.requests) == 6
