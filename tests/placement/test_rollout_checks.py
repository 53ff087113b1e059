"""Issue 20: a rollout never holds a worker while it waits. A health wait or a canary soak
is a check sent again with a countdown; each check message carries its tick, and a
duplicate, stale or early message changes nothing. With a real one-process worker, another
placement task runs while a canary soaks.

Pull-mode clusters (the test plays their agents) keep this free of API servers."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from applications.models import Application, ClusterWork, RolloutPhase, RolloutProgress
from applications.rollout import rollout_run, rollout_start
from applications.services import application_create
from clusters.models import Cluster
from core.celery import app as celery_app
from operations.models import Operation
from operations.services import operation_cancel
from tests.clusters.helpers import wait_for
from tests.factories import make_team
from tests.placement.pull import agent_reports, pull_cluster
from tests.placement.test_propagation import manifests

CHECK_TASK = "applications.tasks.application_rollout_task"


def canary_app(team: Any, *, soak: int, selector: str = "ring=one") -> Application:
    name = f"web-{uuid.uuid4().hex[:6]}"
    return application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=manifests(),
        placement={"selector": selector, "prioritizers": {}},
        rollout={
            "strategy": "canary",
            "canary_clusters": 1,
            "canary_soak_seconds": soak,
            "health_timeout_seconds": 60,
        },
    )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The check messages sent, instead of sending them."""
    messages: list[dict[str, Any]] = []

    def send_task(name: str, **options: Any) -> None:
        messages.append({"name": name, **options})

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return messages


def progress_of(operation: Operation) -> RolloutProgress:
    return RolloutProgress.objects.get(pk=operation.pk)


def make_due(operation: Operation, *, soak_over: bool = False) -> None:
    """Time passes: the next check is due (and the soak, if asked, is over)."""
    past = timezone.now() - timedelta(seconds=1)
    changes: dict[str, Any] = {"check_at": past}
    if soak_over:
        changes["deadline"] = past
    RolloutProgress.objects.filter(pk=operation.pk).update(**changes)


@pytest.mark.django_db
def test_a_canary_soak_is_a_scheduled_check_not_a_sleeping_task(
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given two clusters, ranked by name (no prioritizers): ring-1 is the canary
    team = make_team()
    one, two = (pull_cluster(team, name, {"ring": "one"}) for name in ("ring-1", "ring-2"))
    application = canary_app(team, soak=600)
    operation = rollout_start(application=application, actor=None)

    # when the first check runs: it applies the canary, which is not available yet
    with django_capture_on_commit_callbacks(execute=True):
        rollout_run(operation_id=operation.pk)
    # then the next check is a message for tick 1, in POLL_SECONDS (2 s)
    progress = progress_of(operation)
    assert (progress.tick, progress.step, progress.phase) == (1, 0, RolloutPhase.WAIT)
    assert progress.steps == [["ring-1"], ["ring-2"]]
    assert sent[-1]["name"] == CHECK_TASK
    assert (sent[-1]["args"], sent[-1]["kwargs"]) == ([str(operation.pk)], {"tick": 1})
    assert (sent[-1]["countdown"], sent[-1]["queue"]) == (2.0, "placement")
    assert list(ClusterWork.objects.values_list("cluster__name", flat=True)) == ["ring-1"]

    # when the canary's agent reports it available and the check for tick 1 comes early
    agent_reports(one, application)
    count = len(sent)
    rollout_run(operation_id=operation.pk, tick=0)  # a stale duplicate: dropped
    assert len(sent) == count
    rollout_run(operation_id=operation.pk)  # a resend before it is due: stands in
    assert progress_of(operation).tick == 1
    assert sent[-1]["kwargs"] == {"tick": 1} and 0 < sent[-1]["countdown"] <= 2.0
    # when it is due
    make_due(operation)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        rollout_run(operation_id=operation.pk, tick=1)
    # then the soak of 600 s started and the check returned at once (a sleeping soak
    # would have held this call for 600 s)
    assert time.monotonic() - started < 5
    progress = progress_of(operation)
    assert (progress.tick, progress.phase) == (2, RolloutPhase.SOAK)
    assert progress.deadline is not None
    remaining = (progress.deadline - timezone.now()).total_seconds()
    assert 590 < remaining <= 600
    assert (sent[-1]["kwargs"], sent[-1]["countdown"]) == ({"tick": 2}, 10.0)
    operation.refresh_from_db()
    assert operation.state == "running"
    assert operation.log_lines.filter(text="Canary available; watching it for 600s").exists()
    assert not ClusterWork.objects.filter(cluster=two).exists()  # not before the soak ends

    # when a check during the soak finds the canary still healthy: another check in 10 s
    make_due(operation)
    with django_capture_on_commit_callbacks(execute=True):
        rollout_run(operation_id=operation.pk, tick=2)
    assert (progress_of(operation).tick, progress_of(operation).phase) == (3, RolloutPhase.SOAK)
    assert sent[-1]["countdown"] == 10.0

    # when the soak is over: the rest is applied, then waited for
    make_due(operation, soak_over=True)
    with django_capture_on_commit_callbacks(execute=True):
        rollout_run(operation_id=operation.pk, tick=3)
    progress = progress_of(operation)
    assert (progress.tick, progress.step, progress.phase) == (4, 1, RolloutPhase.WAIT)
    agent_reports(two, application)
    make_due(operation)
    with django_capture_on_commit_callbacks(execute=True):
        rollout_run(operation_id=operation.pk, tick=4)
    # then it succeeded on both, and no further check was sent
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    assert operation.message == "Version 1 available on 2 cluster(s)"
    assert sent[-1]["kwargs"] == {"tick": 4}
    # and a late duplicate of any tick changes nothing
    rollout_run(operation_id=operation.pk, tick=4)
    assert Operation.objects.get(pk=operation.pk).state == "succeeded"


@pytest.mark.django_db
def test_a_canary_that_fails_during_its_soak_is_rolled_back(sent: list[dict[str, Any]]) -> None:
    team = make_team()
    one = pull_cluster(team, "ring-1", {"ring": "one"})
    pull_cluster(team, "ring-2", {"ring": "one"})
    application = canary_app(team, soak=600)
    operation = rollout_start(application=application, actor=None)
    rollout_run(operation_id=operation.pk)
    agent_reports(one, application)
    make_due(operation)
    rollout_run(operation_id=operation.pk, tick=1)
    assert progress_of(operation).phase == RolloutPhase.SOAK
    # when the canary's agent reports a failure during the soak
    agent_reports(one, application, error="ImagePullBackOff")
    make_due(operation)
    rollout_run(operation_id=operation.pk, tick=2)
    # then the rollout failed naming it, and the canary (new to it) lost the application
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert "canary became unhealthy: ring-1: ImagePullBackOff" in operation.error
    assert "rolled back 1 cluster(s)" in operation.error
    assert not ClusterWork.objects.filter(application=application).exists()


@pytest.mark.django_db(transaction=True)
def test_a_soaking_rollout_leaves_the_worker_free_for_other_placements(
    celery_worker: subprocess.Popen[bytes],
) -> None:
    # given a one-process worker (-P solo) and a canary that soaks for 120 s
    team = make_team()
    one = pull_cluster(team, "solo-1", {"ring": "one"})
    pull_cluster(team, "solo-2", {"ring": "one"})
    soaking_app = canary_app(team, soak=120)
    soaking = rollout_start(application=soaking_app, actor=None)

    def canary_soaks() -> bool:
        if ClusterWork.objects.filter(cluster=one).exists():
            agent_reports(one, soaking_app)  # the canary's agent: applied and available
        progress = RolloutProgress.objects.filter(pk=soaking.pk).first()
        return progress is not None and progress.phase == RolloutPhase.SOAK

    wait_for(canary_soaks, timeout=60, what="the canary to start soaking")

    # when another team's application is rolled out meanwhile (to a cluster of its own)
    other_team = make_team()
    other_cluster = pull_cluster(other_team, "solo-other", {"ring": "two"})
    other_app = canary_app(other_team, soak=0, selector="ring=two")
    other = rollout_start(application=other_app, actor=None)

    def other_done() -> bool:
        if ClusterWork.objects.filter(cluster=other_cluster).exists():
            agent_reports(other_cluster, other_app)
        return Operation.objects.get(pk=other.pk).state == "succeeded"

    # then the worker runs it to the end while the canary soaks (a sleeping soak would
    # hold the only worker process for 120 s)
    wait_for(other_done, timeout=45, what="the other rollout to succeed during the soak")
    assert Operation.objects.get(pk=soaking.pk).state == "running"
    assert RolloutProgress.objects.get(pk=soaking.pk).phase == RolloutPhase.SOAK
    assert not ClusterWork.objects.filter(cluster__name="solo-2").exists()

    # when the soaking rollout is canceled, then its next check (<= 10 s) ends it
    operation_cancel(operation=Operation.objects.get(pk=soaking.pk), actor=None)
    wait_for(
        lambda: Operation.objects.get(pk=soaking.pk).state == "canceled",
        timeout=30,
        what="the soaking rollout to be canceled",
    )
    assert Cluster.objects.filter(name="solo-1").exists()
