"""Update runs over clusters rows (no API server: the scripted change kind plays the
change, the health gates read the cluster's status), driven check by check with a clock
the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounts.choices import Role
from accounts.models import Team
from clusters.models import Cluster, ClusterSet
from core.celery import app as celery_app
from operations.models import Operation, OperationLogLine
from tests.factories import Member, make_cluster, make_team, member_of
from tests.updates import scripted
from updates.changes import CHANGES
from updates.choices import RUN_FINAL
from updates.models import UpdateRun, UpdateStrategy
from updates.services import update_run_check, update_run_create, update_strategy_save


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Iterator[scripted.Script]:
    """The scripted kinds stand in for node_pool (reversible) and kubernetes_version."""
    monkeypatch.setitem(CHANGES, "node_pool", "tests.updates.scripted.ScriptedChange")
    monkeypatch.setitem(CHANGES, "kubernetes_version", "tests.updates.scripted.IrreversibleChange")
    fresh = scripted.Script()
    monkeypatch.setattr(scripted, "SCRIPT", fresh)
    yield fresh


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The check messages sent, instead of sending them (tests drive the checks)."""
    messages: list[dict[str, Any]] = []

    def send_task(name: str, **options: Any) -> None:
        messages.append({"name": name, **options})

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return messages


@dataclass
class Clock:
    now: datetime


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))  # a Friday, 13:00 in Berlin


@dataclass
class Fleet:
    team: Team
    operator: Member
    viewer: Member
    admin: Member

    def clusters(self, ring: str, *names: str, **labels: str) -> list[Cluster]:
        return [
            make_cluster(
                team=self.team,
                name=name,
                status="ready",
                kubernetes_version="v1.20.2",
                labels={"ring": ring, **labels},
            )
            for name in names
        ]

    def cluster_set(self, name: str, clusters: list[Cluster]) -> ClusterSet:
        cluster_set = ClusterSet.objects.create(name=name, team=self.team)
        cluster_set.members.add(*clusters)
        return cluster_set

    def strategy(self, stages: list[dict[str, Any]], name: str = "rings") -> UpdateStrategy:
        return update_strategy_save(
            actor=self.operator.user,
            strategy=UpdateStrategy(team=self.team, name=name, stages=stages),
        )

    def run(
        self, stages: list[dict[str, Any]], *, kind: str = "node_pool", **extra: Any
    ) -> UpdateRun:
        # These clusters have no API server: the gates judge their status and conditions
        # (tests/updates/test_gates_*.py read workloads from real ones).
        extra.setdefault("gates", NO_WORKLOADS)
        return update_run_create(
            actor=self.operator.user,
            team=self.team,
            name="roll v2",
            strategy=self.strategy(stages),
            change_kind=kind,
            change_params={"image": "v2"},
            **extra,
        )


NO_WORKLOADS = {"workloads": False}


@pytest.fixture
def fleet(db: None, settings: Any) -> Fleet:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    team = make_team(name="platform")
    return Fleet(
        team=team,
        operator=member_of(team, Role.OPERATOR, username="olga"),
        viewer=member_of(team, Role.VIEWER, username="victor"),
        admin=member_of(team, Role.ADMIN, username="ada"),
    )


def check(run: UpdateRun, clock: Clock) -> UpdateRun:
    """One check, as the message for the run's current tick; the clock moves to when the
    next check is due."""
    run.refresh_from_db()
    update_run_check(run_id=run.pk, tick=run.tick, now=clock.now)
    run.refresh_from_db()
    if run.check_at is not None and run.check_at > clock.now:
        clock.now = run.check_at
    return run


def drive(
    run: UpdateRun,
    clock: Clock,
    *,
    until: Callable[[UpdateRun], bool] = lambda run: run.state in RUN_FINAL,
    limit: int = 300,
) -> UpdateRun:
    for _ in range(limit):
        run.refresh_from_db()
        if until(run):
            return run
        check(run, clock)
    raise AssertionError(f"not reached in {limit} checks: {run.state} {run.message}")


def later(clock: Clock, **delta: float) -> None:
    clock.now += timedelta(**delta)


def states(run: UpdateRun) -> dict[str, str]:
    """Each cluster's state in the run, by name."""
    return dict(run.run_clusters.values_list("cluster_name", "state"))


def operation(run: UpdateRun) -> Operation:
    assert run.operation_id is not None
    return Operation.objects.get(pk=run.operation_id)


def log_of(run: UpdateRun) -> list[str]:
    """The run's log lines, oldest first."""
    lines = OperationLogLine.objects.filter(operation=operation(run)).order_by("id")
    return list(lines.values_list("text", flat=True))
