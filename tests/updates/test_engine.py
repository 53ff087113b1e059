"""The update-run engine, check by check: stage order, concurrency, approvals, windows,
soak, gates with revert (or not), pause/resume/skip/abort, duplicates and a dead worker.
Expectations follow Azure Kubernetes Fleet Manager's update runs (stages in order, groups
of a stage in parallel, maxConcurrency per group) and docs/updates.md."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from clusters.models import Cluster
from operations.services import operation_cancel
from tests.updates.conftest import Clock, Fleet, check, drive, later, log_of, operation, states
from tests.updates.scripted import Script, WorkerDied
from updates.choices import ClusterState, RunState, StageState
from updates.models import MaintenanceWindow, UpdateRun, UpdateRunCluster
from updates.services import (
    maintenance_window_save,
    update_run_abort,
    update_run_approve_stage,
    update_run_check,
    update_run_create,
    update_run_pause,
    update_run_resume,
    update_run_skip_cluster,
    update_run_start,
)
from updates.tasks import update_run_task


def test_stages_in_order_groups_in_parallel_never_above_max_concurrency(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    # given a canary stage and a main stage of two groups at 50% each (4 → 2, 3 → 1);
    # a-1 is also a canary: it runs once, in the canary stage
    fleet.clusters("canary", "canary-1")
    fleet.clusters("a", "a-1", canary="yes")
    fleet.clusters("a", "a-2", "a-3", "a-4", "a-5")
    fleet.clusters("b", "b-1", "b-2", "b-3")
    run = fleet.run(
        [
            {
                "name": "canary",
                "groups": [
                    {"name": "first", "selector": "ring=canary"},
                    {"name": "also", "selector": "canary=yes"},
                ],
            },
            {
                "name": "main",
                "groups": [
                    {"name": "ring-a", "selector": "ring=a"},
                    {"name": "ring-b", "selector": "ring=b"},
                ],
                "max_concurrency": "50%",
            },
        ]
    )
    assert run.run_clusters.get(cluster_name="a-1").stage_index == 0
    update_run_start(actor=fleet.operator.user, run=run)
    script.polls_to_done = 2

    # when it runs to its end
    run = drive(run, clock)

    # then every canary started before any cluster of the main stage
    starts = script.of("start")
    assert set(starts[:2]) == {"canary-1", "a-1"}
    assert sorted(starts[2:]) == ["a-2", "a-3", "a-4", "a-5", "b-1", "b-2", "b-3"]
    # ring a (4 clusters in the main stage, 50%) had 2 at once, ring b (3, 50% → 1) one;
    # the groups ran side by side
    assert script.max_in_flight["a"] == 2
    assert script.max_in_flight["b"] == 1
    assert script.most_at_once == 3
    assert run.state == RunState.SUCCEEDED
    assert set(states(run).values()) == {ClusterState.SUCCEEDED}
    assert script.finished == [sorted(states(run))]
    done = operation(run)
    assert (done.state, done.progress) == ("succeeded", 100)
    assert done.message == "image v2: 9 cluster(s) changed"
    lines = log_of(run)
    assert "Stage canary: started; 2 cluster(s)" in lines
    assert "b-3: changing v1 → v2" in lines
    assert "b-3: changed (v1 → v2); gates passed" in lines
    assert lines.index("Stage canary: done; soaking 0s") < lines.index(
        "Stage main: started; 7 cluster(s)"
    )


def test_a_stage_with_approval_waits_and_only_an_operator_approves(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    fleet.clusters("one", "one-1")
    fleet.clusters("two", "two-1")
    run = fleet.run(
        [
            {"name": "canary", "groups": [{"name": "g", "selector": "ring=one"}]},
            {"name": "eu", "groups": [{"name": "g", "selector": "ring=two"}], "approval": True},
        ]
    )
    update_run_start(actor=fleet.operator.user, run=run)

    # when the first stage is done: the run waits for approval, visibly
    run = drive(run, clock, until=lambda r: r.state == RunState.WAITING_APPROVAL)
    assert run.message == "stage eu waits for approval"
    assert operation(run).message == "stage eu waits for approval"
    assert run.run_stages.get(index=1).state == StageState.WAITING_APPROVAL
    for _ in range(3):  # more checks change nothing
        run = check(run, clock)
    assert script.of("start") == ["one-1"]

    # a viewer cannot approve
    with pytest.raises(PermissionDenied):
        update_run_approve_stage(actor=fleet.viewer.user, run=run, stage_index=1)
    # a stage that does not wait cannot be approved
    with pytest.raises(ValidationError) as refused:
        update_run_approve_stage(actor=fleet.operator.user, run=run, stage_index=0)
    assert "stage" in refused.value.message_dict

    # an operator approves: the stage starts
    update_run_approve_stage(actor=fleet.operator.user, run=run, stage_index=1)
    run = drive(run, clock)
    assert run.state == RunState.SUCCEEDED
    assert script.of("start") == ["one-1", "two-1"]
    stage = run.run_stages.get(index=1)
    assert stage.approved_by == fleet.operator.user
    assert "Stage eu approved by olga" in log_of(run)


def test_a_cluster_starts_only_inside_its_window(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    # given prod-1 in a set with a Saturday 02:00-04:00 Europe/Berlin window, and dev-1 in
    # no windowed set; the clock is Friday 27 March 2026, 12:00 UTC
    (prod,) = fleet.clusters("prod", "prod-1")
    fleet.clusters("prod", "dev-1")
    maintenance_window_save(
        actor=None,
        window=MaintenanceWindow(
            team=fleet.team,
            name="weekend",
            cluster_set=fleet.cluster_set("prod", [prod]),
            days=[6],
            start_time=time(2),
            duration_minutes=120,
            timezone="Europe/Berlin",
        ),
    )
    run = fleet.run(
        [{"name": "all", "groups": [{"name": "g", "selector": "ring=prod"}], "max_concurrency": 2}]
    )
    update_run_start(actor=fleet.operator.user, run=run)

    # when dev-1 is done, prod-1 still waits for its window
    run = drive(run, clock, until=lambda r: states(r)["dev-1"] == ClusterState.SUCCEEDED)
    before = clock.now
    run = check(run, clock)
    assert states(run)["prod-1"] == ClusterState.WAITING_WINDOW
    assert run.message == "prod-1 waits for its window (opens Sat 02:00 Europe/Berlin)"
    assert operation(run).message == run.message
    # the next check is a minute away (no message waits for hours)
    assert run.check_at is not None and (run.check_at - before).total_seconds() == 60
    assert script.of("start") == ["dev-1"]

    # when Saturday 01:00 UTC comes (02:00 CET), it starts
    clock.now = datetime.fromisoformat("2026-03-28T00:59:30+00:00")
    run = check(run, clock)
    assert script.of("start") == ["dev-1"]
    clock.now = datetime.fromisoformat("2026-03-28T01:00:00+00:00")
    run = drive(run, clock)
    assert script.of("start") == ["dev-1", "prod-1"]
    assert run.state == RunState.SUCCEEDED
    started = run.run_clusters.get(cluster_name="prod-1").started_at
    assert started == datetime.fromisoformat("2026-03-28T01:00:00+00:00")


def test_the_next_stage_starts_after_the_soak_and_a_last_gate_check(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    fleet.clusters("one", "one-1")
    fleet.clusters("two", "two-1")
    run = fleet.run(
        [
            {
                "name": "canary",
                "groups": [{"name": "g", "selector": "ring=one"}],
                "soak_seconds": 600,
            },
            {"name": "rest", "groups": [{"name": "g", "selector": "ring=two"}]},
        ]
    )
    update_run_start(actor=fleet.operator.user, run=run)
    run = drive(run, clock, until=lambda r: r.run_stages.get(index=0).state == StageState.SOAKING)
    soak_until = run.run_stages.get(index=0).soak_until
    assert soak_until is not None
    assert run.message == f"stage canary soaks until {soak_until:%Y-%m-%d %H:%M:%S} UTC"
    run = drive(run, clock)
    assert run.state == RunState.SUCCEEDED
    two = run.run_clusters.get(cluster_name="two-1")
    assert two.started_at is not None and two.started_at >= soak_until


def test_a_cluster_degraded_during_the_soak_fails_the_run(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    (one,) = fleet.clusters("one", "one-1")
    fleet.clusters("two", "two-1")
    run = fleet.run(
        [
            {
                "name": "canary",
                "groups": [{"name": "g", "selector": "ring=one"}],
                "soak_seconds": 600,
            },
            {"name": "rest", "groups": [{"name": "g", "selector": "ring=two"}]},
        ]
    )
    update_run_start(actor=fleet.operator.user, run=run)
    run = drive(run, clock, until=lambda r: r.run_stages.get(index=0).state == StageState.SOAKING)
    Cluster.objects.filter(pk=one.pk).update(status="degraded", status_reason="NodeNotReady")
    run = drive(run, clock)
    assert run.state == RunState.REVERTED
    assert script.of("revert") == ["one-1"]
    assert "two-1" not in script.of("start")
    assert run.run_stages.get(index=0).state == StageState.FAILED


TWO_STAGES = [
    {"name": "first", "groups": [{"name": "g", "selector": "ring=one"}]},
    {"name": "second", "groups": [{"name": "g", "selector": "ring=two"}]},
]


def test_a_gate_failure_in_stage_two_reverts_both_stages_latest_first(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    # given stage 1 (s1a, s1b) and stage 2 (s2a, s2b, s2c), one cluster at a time; s2b
    # crash-loops once changed (Degraded: the Ready gate fails)
    fleet.clusters("one", "s1a", "s1b")
    fleet.clusters("two", "s2a", "s2b", "s2c")
    script.degrade_on_done = {"s2b"}
    run = fleet.run(TWO_STAGES)
    update_run_start(actor=fleet.operator.user, run=run)

    run = drive(run, clock)

    # then s2c never started; the four changed clusters were reverted, latest first
    assert script.of("start") == ["s1a", "s1b", "s2a", "s2b"]
    assert script.of("revert") == ["s2b", "s2a", "s1b", "s1a"]
    assert run.state == RunState.REVERTED
    assert states(run) == {
        "s1a": ClusterState.REVERTED,
        "s1b": ClusterState.REVERTED,
        "s2a": ClusterState.REVERTED,
        "s2b": ClusterState.REVERTED,
        "s2c": ClusterState.PENDING,
    }
    done = operation(run)
    assert done.state == "failed"
    assert done.error.startswith(
        "s2b: gates failed: s2b is Degraded, not Ready (CrashLoopBackOff)."
    )
    assert done.result["reverted"] == ["s1a", "s1b", "s2a", "s2b"]
    assert run.run_stages.get(index=1).state == StageState.FAILED
    assert run.run_stages.get(index=0).state == StageState.SUCCEEDED


def test_a_failing_gate_is_checked_again_until_the_grace_after_the_change_ends(
    fleet: Fleet, clock: Clock, script: Script, settings: Any
) -> None:
    # given two clusters, one at a time, Degraded once changed (pods restarting)
    settings.KEELSON_UPDATE_GATE_GRACE_SECONDS = 60
    fleet.clusters("one", "s1a", "s1b")
    script.degrade_on_done = {"s1a", "s1b"}
    run = fleet.run([{"name": "first", "groups": [{"name": "g", "selector": "ring=one"}]}])
    update_run_start(actor=fleet.operator.user, run=run)

    # when s1a's change is done, then its failing gate does not fail it yet
    def gating(name: str) -> Any:
        return lambda r: states(r)[name] == ClusterState.GATING

    run = drive(run, clock, until=gating("s1a"))
    done_at = clock.now - timedelta(seconds=5)  # the check before moved the clock 5 s on
    row = run.run_clusters.get(cluster_name="s1a")
    assert row.finished_at == done_at
    until = f"{done_at + timedelta(seconds=60):%H:%M:%S}"
    assert row.message == (
        f"gates not passed yet (checked again until {until} UTC): s1a is Degraded, not Ready "
        "(CrashLoopBackOff)."
    )
    assert f"s1a: {row.message}" in log_of(run)
    # and it is checked again while the grace lasts; s1b waits for its turn
    later(clock, seconds=50)
    run = check(run, clock)
    assert states(run) == {"s1a": ClusterState.GATING, "s1b": ClusterState.PENDING}

    # when s1a is Ready again within the grace, then it passes and s1b starts
    Cluster.objects.filter(name="s1a").update(status="ready", status_reason="")
    run = check(run, clock)
    assert run.run_clusters.get(cluster_name="s1a").message == "gates passed"
    assert states(run) == {"s1a": ClusterState.SUCCEEDED, "s1b": ClusterState.CHANGING}

    # when s1b stays Degraded, then it fails at the first check after the grace
    run = drive(run, clock, until=gating("s1b"))
    gated = clock.now - timedelta(seconds=5)
    run = drive(run, clock, until=lambda r: states(r)["s1b"] != ClusterState.GATING)
    assert run.failure == "s1b: gates failed: s1b is Degraded, not Ready (CrashLoopBackOff)."
    failed = run.run_clusters.get(cluster_name="s1b")
    assert failed.state == ClusterState.REVERTING  # failed, and its revert began at once
    assert failed.finished_at is not None
    assert timedelta(seconds=60) <= failed.finished_at - gated < timedelta(seconds=65)
    assert drive(run, clock).state == RunState.REVERTED


def test_a_cluster_unhealthy_when_its_turn_comes_is_skipped_not_changed(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    # given s2a goes Degraded (for its own reasons) after the run was previewed
    fleet.clusters("one", "s1a")
    fleet.clusters("two", "s2a", "s2b")
    run = fleet.run(TWO_STAGES)
    update_run_start(actor=fleet.operator.user, run=run)
    Cluster.objects.filter(name="s2a").update(status="degraded")

    run = drive(run, clock)

    # then the others change and the run succeeds; s2a is listed as skipped, with why
    assert run.state == RunState.SUCCEEDED
    assert script.of("start") == ["s1a", "s2b"]
    assert states(run) == {
        "s1a": ClusterState.SUCCEEDED,
        "s2a": ClusterState.SKIPPED,
        "s2b": ClusterState.SUCCEEDED,
    }
    skipped = run.run_clusters.get(cluster_name="s2a")
    assert skipped.skip_reason == "It was Degraded when its turn came; not changed."


def test_a_change_refused_at_its_start_fails_the_cluster_and_reverts_the_others(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    # given s1a changed in stage 1, and s2a's start refused (the run's user may not)
    fleet.clusters("one", "s1a")
    fleet.clusters("two", "s2a", "s2b")
    script.refuse_on = {"s2a"}
    run = fleet.run(TWO_STAGES)
    update_run_start(actor=fleet.operator.user, run=run)

    run = drive(run, clock)

    # then the run stops: s1a is reverted; s2a changed nothing, so nothing is reverted there
    assert run.state == RunState.REVERTED
    assert script.of("revert") == ["s1a"]
    assert states(run) == {
        "s1a": ClusterState.REVERTED,
        "s2a": ClusterState.FAILED,
        "s2b": ClusterState.PENDING,
    }
    assert operation(run).error.startswith("s2a: change failed: Changing s2a needs the admin role.")


def test_an_irreversible_kind_fails_and_says_which_cluster_is_on_which_value(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    fleet.clusters("one", "s1a", "s1b")
    fleet.clusters("two", "s2a", "s2b", "s2c")
    script.fail_on = {"s2b"}
    run = fleet.run(TWO_STAGES, kind="kubernetes_version")
    with pytest.raises(PermissionDenied, match="admin role"):  # upgrades take an admin
        update_run_start(actor=fleet.operator.user, run=run)
    update_run_start(actor=fleet.admin.user, run=run)

    run = drive(run, clock)

    assert run.state == RunState.FAILED
    assert script.of("revert") == []
    done = operation(run)
    assert done.result["clusters"]["s1a"] == {
        "state": "succeeded",
        "from": "v1",
        "to": "v2",
        "on": "v2",
    }
    assert done.result["clusters"]["s2b"]["on"] == "unknown"
    assert done.result["clusters"]["s2c"]["on"] == "v1"
    assert done.error == (
        "s2b: change failed: the new nodes never became Ready. image v2 cannot be reverted: "
        "on v2: s1a, s1b, s2a; unknown: s2b; on v1: s2c"
    )


def test_pause_resume_skip_and_abort(fleet: Fleet, clock: Clock, script: Script) -> None:
    fleet.clusters("one", "c-1", "c-2", "c-3", "c-4")
    script.polls_to_done = 3
    run = fleet.run([{"name": "all", "groups": [{"name": "g", "selector": "ring=one"}]}])
    update_run_start(actor=fleet.operator.user, run=run)
    run = check(run, clock)
    assert states(run)["c-1"] == ClusterState.CHANGING

    # paused: c-1 finishes, nothing new starts
    update_run_pause(actor=fleet.operator.user, run=run)
    run = drive(run, clock, until=lambda r: states(r)["c-1"] == ClusterState.SUCCEEDED)
    for _ in range(3):
        run = check(run, clock)
    assert script.of("start") == ["c-1"]
    assert run.state == RunState.PAUSED and run.message == "Paused"

    # skipping: a pending cluster yes, a changed one no
    update_run_skip_cluster(actor=fleet.operator.user, run=run, cluster_name="c-2")
    with pytest.raises(ValidationError):
        update_run_skip_cluster(actor=fleet.operator.user, run=run, cluster_name="c-1")
    with pytest.raises(ValidationError):
        update_run_pause(actor=fleet.operator.user, run=run)  # already paused

    # resumed: c-3 starts (c-2 was skipped)
    update_run_resume(actor=fleet.operator.user, run=run)
    run = check(run, clock)
    assert script.of("start") == ["c-1", "c-3"]

    # aborted with c-3 under way: it finishes, c-4 never starts, nothing is reverted
    update_run_abort(actor=fleet.operator.user, run=run)
    run = drive(run, clock)
    assert run.state == RunState.ABORTED
    assert states(run) == {
        "c-1": ClusterState.SUCCEEDED,
        "c-2": ClusterState.SKIPPED,
        "c-3": ClusterState.SUCCEEDED,
        "c-4": ClusterState.PENDING,
    }
    assert script.of("start") == ["c-1", "c-3"] and script.of("revert") == []
    done = operation(run)
    assert (done.state, done.message) == (
        "canceled",
        "Aborted; 2 cluster(s) changed, nothing reverted",
    )


def test_the_operations_cancel_button_aborts(fleet: Fleet, clock: Clock, script: Script) -> None:
    fleet.clusters("one", "c-1", "c-2")
    run = fleet.run([{"name": "all", "groups": [{"name": "g", "selector": "ring=one"}]}])
    update_run_start(actor=fleet.operator.user, run=run)
    run = check(run, clock)
    operation_cancel(operation=operation(run), actor=fleet.operator.user)
    run = drive(run, clock)
    assert run.state == RunState.ABORTED
    assert script.of("start") == ["c-1"] and script.of("revert") == []
    assert operation(run).state == "canceled"


def test_a_duplicate_check_changes_nothing(
    fleet: Fleet, clock: Clock, script: Script, sent: list[dict[str, Any]]
) -> None:
    fleet.clusters("one", "c-1", "c-2")
    run = fleet.run([{"name": "all", "groups": [{"name": "g", "selector": "ring=one"}]}])
    update_run_start(actor=fleet.operator.user, run=run)
    run = check(run, clock)
    run = check(run, clock)
    before = (run.tick, run.check_at, states(run), list(script.calls), len(log_of(run)))

    # a redelivered message of the tick just done, and one sent before the check is due
    update_run_check(run_id=run.pk, tick=run.tick - 1, now=clock.now)
    later(clock, seconds=-1)
    update_run_check(run_id=run.pk, now=clock.now)
    run.refresh_from_db()

    assert (run.tick, run.check_at, states(run), script.calls, len(log_of(run))) == before
    # the early one stood in for the tick's own message (in case that was lost): same tick
    assert sent == [
        {
            "name": "updates.tasks.update_run_task",
            "args": [str(run.operation_id)],
            "kwargs": {"tick": run.tick},
            "countdown": 1.0,
            "queue": "default",
            "routing_key": "default",
        }
    ]


def test_a_run_resumes_where_it_was_after_its_worker_died(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    fleet.clusters("one", "c-1", "c-2", "c-3")
    script.die_on_start = {"c-2"}
    run = fleet.run([{"name": "all", "groups": [{"name": "g", "selector": "ring=one"}]}])
    update_run_start(actor=fleet.operator.user, run=run)

    # when the worker dies inside c-2's start (c-2 is marked changing, its state not stored)
    with pytest.raises(WorkerDied):
        drive(run, clock)
    run.refresh_from_db()
    assert states(run)["c-1"] == ClusterState.SUCCEEDED
    tick = run.tick
    assert states(run)["c-2"] == ClusterState.CHANGING

    # then the operations sweeper's resend (no tick) does the check again and goes on
    later(clock, seconds=90)
    update_run_check(run_id=run.pk, now=clock.now)
    run.refresh_from_db()
    assert run.tick == tick + 1
    run = drive(run, clock)
    assert run.state == RunState.SUCCEEDED
    assert script.of("start") == ["c-1", "c-2", "c-2", "c-3"]
    assert "c-2: change started again (a check was interrupted)" in log_of(run)
    assert UpdateRunCluster.objects.filter(run=run, state=ClusterState.SUCCEEDED).count() == 3


def test_a_run_whose_change_no_longer_loads_fails_saying_why(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    fleet.clusters("one", "c-1", "c-2")
    run = fleet.run([{"name": "all", "groups": [{"name": "g", "selector": "ring=one"}]}])
    update_run_start(actor=fleet.operator.user, run=run)
    run = check(run, clock)
    # what it changes is gone (a deleted policy or application would do this)
    UpdateRun.objects.filter(pk=run.pk).update(change_params={})
    run = check(run, clock)
    assert run.state == RunState.FAILED
    assert run.message == "The change can no longer be applied: The image to roll out."
    assert operation(run).state == "failed"
    assert script.of("start") == ["c-1"]


def test_the_task_runs_one_check(fleet: Fleet, script: Script) -> None:
    fleet.clusters("one", "c-1")
    run = fleet.run([{"name": "all", "groups": [{"name": "g", "selector": "ring=one"}]}])
    started = update_run_start(actor=fleet.operator.user, run=run)
    update_run_task(str(started.pk))
    run.refresh_from_db()
    assert (run.tick, operation(run).state) == (1, "running")
    assert script.of("start") == ["c-1"]


def test_two_runs_never_change_one_cluster_at_once(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    fleet.clusters("one", "s1a")
    fleet.clusters("two", "s2a")
    first = fleet.run(TWO_STAGES)
    update_run_start(actor=fleet.operator.user, run=first)
    check(first, clock)  # s1a changing
    assert first.strategy is not None
    second = update_run_create(
        actor=fleet.operator.user,
        team=fleet.team,
        name="roll v3",
        strategy=first.strategy,
        change_kind="node_pool",
        change_params={"image": "v3"},
        gates={"workloads": False},
    )

    with pytest.raises(ValidationError, match="Run roll v2 \\(running\\) is still changing"):
        update_run_start(actor=fleet.operator.user, run=second)
    second.refresh_from_db()
    assert second.state == RunState.DRAFT

    # once the first run has ended, the second may start
    drive(first, clock)
    update_run_start(actor=fleet.operator.user, run=second)
    assert drive(second, clock).state == RunState.SUCCEEDED
