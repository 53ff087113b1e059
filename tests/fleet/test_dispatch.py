"""Operations are worked on exactly once: a duplicate message finds the advisory lock held
and does nothing; what nobody works on (never queued, or its worker gone) is sent again
by the sweeper and completed by a real worker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta

import psycopg2
import pytest
from django.utils import timezone

from applications.rollout import rollout_run, rollout_start
from applications.services import application_create
from operations import dispatch
from operations.dispatch import _lock_key, operations_redispatch
from operations.models import Operation
from tests.clusters.helpers import wait_for
from tests.factories import make_team
from tests.placement.test_propagation import manifests
from tests.support import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other_session() -> Iterator[psycopg2.extensions.connection]:
    """Another database session, standing in for a live worker."""
    conn = psycopg2.connect(child_database_url())
    conn.autocommit = True
    yield conn
    conn.close()


def _rollout() -> Operation:
    """A rollout of an application placed on no cluster (quick, needs no cluster)."""
    team = make_team()
    application = application_create(
        actor=None, team=team, name=f"app-{team.pk}", namespace="ns", manifests=manifests()
    )
    return rollout_start(application=application, actor=None)


def test_a_duplicate_run_finds_the_lock_held_and_does_nothing(
    other_session: psycopg2.extensions.connection,
) -> None:
    operation = _rollout()
    with other_session.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key(operation.pk)])
    rollout_run(operation_id=operation.pk)
    assert Operation.objects.get(pk=operation.pk).state == "pending"  # untouched
    with other_session.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(operation.pk)])
    rollout_run(operation_id=operation.pk)
    assert Operation.objects.get(pk=operation.pk).state == "succeeded"


def test_the_sweeper_resends_unattended_operations_only(
    other_session: psycopg2.extensions.connection,
    celery_worker: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given rollouts created while their messages could not be queued (the broker was
    # down), one of which a live worker has since picked up (it holds the lock)
    with monkeypatch.context() as broker_down:
        broker_down.setattr(dispatch, "_send", lambda *args: False)
        lost = _rollout()
        alive = _rollout()
    old = timezone.now() - timedelta(minutes=5)
    Operation.objects.filter(pk=lost.pk).update(state="pending", created_at=old)
    Operation.objects.filter(pk=alive.pk).update(state="running", updated_at=old)
    with other_session.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key(alive.pk)])
    wait_for(
        lambda: Operation.objects.get(pk=lost.pk).state == "pending",
        timeout=5,
        what="the lost operation to stay pending",
    )
    # when the sweeper runs
    sent = operations_redispatch()
    # then only the unattended one was sent again, and a worker completed it
    assert sent == 1
    wait_for(
        lambda: Operation.objects.get(pk=lost.pk).state == "succeeded",
        timeout=60,
        what="the resent operation to be completed",
    )
    assert Operation.objects.get(pk=alive.pk).state == "running"
