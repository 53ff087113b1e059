"""Running an update run one check at a time (docs/updates.md, "How a run runs").

No check waits: each loads the run, does what is due now (polls the changes under way,
starts the clusters whose turn and window have come, moves stages on) and says how long
until the next check; `run_check` then sends the next message with that countdown. As in
applications/rollout, each message carries the tick it was sent for and the check that
finishes a tick moves the run to the next one with a conditional update, so a duplicate
(a broker redelivery, the operations sweeper's resend) finds the run moved on and does
nothing. Everything a check learns is written at once, cluster by cluster: a check whose
worker died is done again from what was written (a cluster marked changing whose change
state was never stored is started again: `Change.start` must tolerate that).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from clusters.choices import ClusterStatus
from clusters.models import Cluster
from operations.choices import LogLevel, OperationState
from operations.dispatch import exclusive_operation, operation_send_check
from operations.models import Operation
from operations.services import operation_claim, operation_finish, operation_update
from updates.change_state import loaded_state, stored_state
from updates.changes import change_for
from updates.choices import RUN_FINAL, ClusterState, RunState, StageState
from updates.gates import gate_baseline, gate_check
from updates.models import UpdateRun, UpdateRunCluster, UpdateRunStage
from updates.planning import cluster_windows
from updates.reverting import Reverter, final_values
from updates.strategy import concurrency_limit
from updates.windows import Window, is_open, next_opening

logger = logging.getLogger(__name__)

RUN_KIND = "update.run"
POLL_SECONDS = 5.0  # while changes are under way
WAIT_SECONDS = 60.0  # at most, while only a window or a soak is awaited
IDLE_SECONDS = 10.0  # waiting for an approval, or paused
GATES_PENDING = "gates not passed yet"
ACTIVE = (ClusterState.CHANGING, ClusterState.GATING)
STARTABLE = (ClusterState.PENDING, ClusterState.WAITING_WINDOW)
FINISHED = (
    ClusterState.SUCCEEDED,
    ClusterState.SKIPPED,
    ClusterState.FAILED,
    ClusterState.REVERTED,
)


class Check:
    """One check of a run: does what is due at `now`; `advance` returns the seconds until
    the next check, or None when the run has ended."""

    def __init__(self, run: UpdateRun, now: datetime) -> None:
        self.run = run
        self.now = now
        self.operation_id: UUID = run.operation_id  # type: ignore[assignment]
        self.change = change_for(run.change_kind, team=run.team, params=run.change_params)
        # The run acts as the user who started it (checked then: services._start_role).
        operation = Operation.objects.select_related("created_by").filter(pk=self.operation_id)
        started = operation.first()
        self.actor = (started.created_by if started else None) or run.created_by
        self.stages = list(UpdateRunStage.objects.filter(run=run).order_by("index"))
        self.rows = list(
            UpdateRunCluster.objects.filter(run=run)
            .select_related("cluster")
            .order_by("stage_index", "position")
        )
        self._windows: dict[int, list[Window]] | None = None

    # ----------------------------------------------------------------- bookkeeping

    def log(self, text: str, level: LogLevel = LogLevel.INFO) -> None:
        operation_update(operation_id=self.operation_id, log=text, level=level)

    def say(self, message: str) -> None:
        """What the run does or waits for, on the run and its operation."""
        message = message[:500]
        if message != self.run.message:
            self.run.message = message
            UpdateRun.objects.filter(pk=self.run.pk).update(message=message)
        done = sum(1 for row in self.rows if row.state in FINISHED)
        progress = min(99, int(100 * done / len(self.rows))) if self.rows else 0
        operation_update(operation_id=self.operation_id, message=message, progress=progress)

    def save_row(self, row: UpdateRunCluster, *fields: str) -> None:
        row.save(update_fields=list(fields))

    def set_state(self, state: RunState, *, allowed: tuple[str, ...]) -> bool:
        moved = UpdateRun.objects.filter(pk=self.run.pk, state__in=allowed).update(state=state)
        if moved:
            self.run.state = state
        return bool(moved)

    def windows_of(self, cluster_id: int | None) -> list[Window]:
        if cluster_id is None:
            return []
        if self._windows is None:
            ids = [r.cluster_id for r in self.rows if r.cluster_id is not None]
            self._windows = cluster_windows(self.run.team_id, ids)
        return self._windows.get(cluster_id, [])

    def fail(self, row: UpdateRunCluster, reason: str, *, gates: bool = False) -> None:
        """A cluster failed: no cluster starts any more; the run stops."""
        row.state = ClusterState.FAILED
        row.finished_at = self.now
        row.message = (("gates failed: " if gates else "change failed: ") + reason)[:500]
        self.save_row(row, "state", "finished_at", "message")
        failure = f"{row.cluster_name}: {row.message}"[:500]
        self.log(f"{failure}; no more clusters start", LogLevel.ERROR)
        if not self.run.failure:
            UpdateRun.objects.filter(pk=self.run.pk, failure="").update(failure=failure)
            self.run.failure = failure

    # ---------------------------------------------------------------------- a check

    def advance(self) -> float | None:
        run = self.run
        if run.state in RUN_FINAL:
            return None
        cancel = Operation.objects.filter(pk=self.operation_id, cancel_requested=True).exists()
        if cancel and not run.abort_requested:
            UpdateRun.objects.filter(pk=run.pk).update(abort_requested=True)
            run.abort_requested = True
            self.log("The operation was canceled: the run is aborted", LogLevel.WARNING)
        self.poll_changes()
        if run.failure:
            return self.stop_failed()
        if run.abort_requested:
            return self.stop_aborted()
        if run.state == RunState.PAUSED:
            active = [r.cluster_name for r in self.rows if r.state in ACTIVE]
            self.say("Paused" + (f"; finishing {', '.join(active)}" if active else ""))
            return POLL_SECONDS if active else IDLE_SECONDS
        return self.run_stages()

    def poll_changes(self) -> None:
        """Follow every change under way: done → health gates → succeeded or failed."""
        for row in self.rows:
            if row.state == ClusterState.CHANGING:
                self.poll_change(row)
            if row.state == ClusterState.GATING:
                self.gate(row)

    def poll_change(self, row: UpdateRunCluster) -> None:
        cluster = row.cluster
        if cluster is None:
            self.fail(row, "the cluster was deleted")
            return
        if not row.change_state:  # marked changing, its start never stored: start again
            if self.begin(row, cluster):
                self.log(f"{row.cluster_name}: change started again (a check was interrupted)")
            return
        step = self.change.poll(cluster, loaded_state(row.change_state))
        if step.state == "running":
            if step.message and step.message[:500] != row.message:
                row.message = step.message[:500]
                self.save_row(row, "message")
            return
        if step.state == "failed":
            self.fail(row, step.message or "the change failed")
            return
        row.state = ClusterState.GATING
        row.message = step.message[:500]
        row.finished_at = self.now  # the change's end: the gates' grace counts from here
        self.save_row(row, "state", "message", "finished_at")

    def gate(self, row: UpdateRunCluster) -> None:
        """The gates after the change; failing ones are checked again at the next checks
        until `KEELSON_UPDATE_GATE_GRACE_SECONDS` after the change's end (pods rescheduled
        by a drain need a moment to be available again), then the cluster fails."""
        assert row.cluster is not None
        failures = gate_check(row.cluster, row.baseline, config=self.run.gates)
        if failures:
            since = row.finished_at or self.now
            grace = timedelta(seconds=settings.KEELSON_UPDATE_GATE_GRACE_SECONDS)
            if self.now < since + grace:
                self.gates_pending(row, " ".join(failures), until=since + grace)
                return
            self.fail(row, " ".join(failures), gates=True)
            return
        row.state = ClusterState.SUCCEEDED
        if row.message.startswith(GATES_PENDING):
            row.message = "gates passed"
        row.finished_at = self.now
        self.save_row(row, "state", "finished_at", "message")
        self.log(f"{row.cluster_name}: changed ({row.from_value} → {row.to_value}); gates passed")

    def gates_pending(self, row: UpdateRunCluster, failures: str, *, until: datetime) -> None:
        """Say why the cluster's gates have not passed yet (logged the first time)."""
        message = f"{GATES_PENDING} (checked again until {until:%H:%M:%S} UTC): {failures}"[:500]
        if message == row.message:
            return
        if not row.message.startswith(GATES_PENDING):
            self.log(f"{row.cluster_name}: {message}", LogLevel.WARNING)
        row.message = message
        self.save_row(row, "message")

    # ------------------------------------------------------------------- the stages

    def run_stages(self) -> float | None:
        run = self.run
        while run.current_stage < len(self.stages):
            stage = self.stages[run.current_stage]
            rows = [r for r in self.rows if r.stage_index == stage.index]
            if stage.state == StageState.PENDING:
                if all(r.state == ClusterState.SKIPPED for r in rows):
                    self.stage_state(stage, StageState.SKIPPED, "nothing to change")
                    self.next_stage()
                    continue
                if stage.approval_required and stage.approved_at is None:
                    self.stage_state(stage, StageState.WAITING_APPROVAL, "waits for approval")
                else:
                    self.stage_start(stage, rows)
            if stage.state == StageState.WAITING_APPROVAL:
                stage.refresh_from_db(fields=["approved_at", "approved_by"])
                if stage.approved_at is None:
                    self.set_state(RunState.WAITING_APPROVAL, allowed=(RunState.RUNNING,))
                    self.say(f"stage {stage.name} waits for approval")
                    return IDLE_SECONDS
                self.set_state(RunState.RUNNING, allowed=(RunState.WAITING_APPROVAL,))
                self.stage_start(stage, rows)
            if stage.state == StageState.RUNNING:
                started = self.start_clusters(stage, rows)
                if any(r.state not in (ClusterState.SUCCEEDED, ClusterState.SKIPPED) for r in rows):
                    return started
                stage.soak_until = self.now + timedelta(seconds=stage.soak_seconds)
                stage.save(update_fields=["soak_until"])
                self.stage_state(stage, StageState.SOAKING, f"done; soaking {stage.soak_seconds}s")
            if stage.state == StageState.SOAKING:
                soaking = self.soak(stage, rows)
                if stage.state == StageState.FAILED:
                    return self.stop_failed()
                if soaking is not None:
                    return soaking
            if stage.state in (StageState.SUCCEEDED, StageState.SKIPPED):
                self.next_stage()
        self.finish_succeeded()
        return None

    def stage_state(self, stage: UpdateRunStage, state: StageState, note: str) -> None:
        stage.state = state
        fields = ["state"]
        if state in (StageState.SUCCEEDED, StageState.SKIPPED, StageState.FAILED):
            stage.finished_at = self.now
            fields.append("finished_at")
        stage.save(update_fields=fields)
        self.log(f"Stage {stage.name}: {note}")

    def stage_start(self, stage: UpdateRunStage, rows: list[UpdateRunCluster]) -> None:
        stage.started_at = self.now
        stage.save(update_fields=["started_at"])
        who = stage.approved_by.get_username() if stage.approved_by else ""
        todo = sum(1 for r in rows if r.state != ClusterState.SKIPPED)
        approved = f" (approved by {who})" if who else ""
        self.stage_state(stage, StageState.RUNNING, f"started{approved}; {todo} cluster(s)")

    def next_stage(self) -> None:
        self.run.current_stage += 1
        UpdateRun.objects.filter(pk=self.run.pk).update(current_stage=self.run.current_stage)

    def soak(self, stage: UpdateRunStage, rows: list[UpdateRunCluster]) -> float | None:
        """Wait out the soak (the seconds until the next check), then check every changed
        cluster of the stage again: the stage succeeds (None) or fails."""
        assert stage.soak_until is not None
        remaining = (stage.soak_until - self.now).total_seconds()
        if remaining > 0:
            self.say(f"stage {stage.name} soaks until {stage.soak_until:%Y-%m-%d %H:%M:%S} UTC")
            return min(remaining, WAIT_SECONDS)
        for row in rows:
            if row.state == ClusterState.SUCCEEDED and row.cluster is not None:
                failures = gate_check(row.cluster, row.baseline, config=self.run.gates)
                if failures:
                    self.fail(row, "after the soak: " + " ".join(failures), gates=True)
        if self.run.failure:
            self.stage_state(stage, StageState.FAILED, "gates failed after the soak")
            return None
        self.stage_state(stage, StageState.SUCCEEDED, "succeeded; gates passed after the soak")
        return None

    def group_limits(self, stage: UpdateRunStage) -> dict[str, int]:
        spec = self.run.stages[stage.index]
        limits = {}
        for group in spec["groups"]:
            planned = int(group.get("planned", 0))
            limits[group["name"]] = concurrency_limit(spec.get("max_concurrency", 1), planned)
        return limits

    def start_clusters(self, stage: UpdateRunStage, rows: list[UpdateRunCluster]) -> float:
        """Start every cluster whose turn has come and whose window is open."""
        limits = self.group_limits(stage)
        in_flight: dict[str, int] = {}
        for row in rows:
            if row.state in ACTIVE:
                in_flight[row.group] = in_flight.get(row.group, 0) + 1
        waits: list[tuple[datetime, str]] = []
        for row in rows:
            if row.state not in STARTABLE or in_flight.get(row.group, 0) >= limits.get(
                row.group, 1
            ):
                continue
            windows = self.windows_of(row.cluster_id)
            if not is_open(windows, self.now):
                waits.append(self.wait_window(row, windows))
                continue
            if self.start(row):
                in_flight[row.group] = in_flight.get(row.group, 0) + 1
        active = [r.cluster_name for r in rows if r.state in ACTIVE]
        done = sum(1 for r in rows if r.state in FINISHED)
        if active:
            self.say(
                f"stage {stage.name}: changing {', '.join(active[:10])}"
                f"{' …' if len(active) > 10 else ''} ({done} of {len(rows)} done)"
            )
            return POLL_SECONDS
        if waits:
            opens, message = min(waits)
            self.say(message)
            seconds = (opens - self.now).total_seconds()
            return max(POLL_SECONDS, min(seconds, WAIT_SECONDS))
        return POLL_SECONDS

    def wait_window(self, row: UpdateRunCluster, windows: list[Window]) -> tuple[datetime, str]:
        opening = next_opening(windows, self.now)
        if opening is None:
            message = f"{row.cluster_name} waits for its window (none of its windows has a day)"
            opens = self.now + timedelta(days=7)
        else:
            message = f"{row.cluster_name} waits for its window (opens {opening.describe()})"
            opens = opening.at
        if row.state != ClusterState.WAITING_WINDOW or row.message != message:
            moved = UpdateRunCluster.objects.filter(pk=row.pk, state__in=STARTABLE).update(
                state=ClusterState.WAITING_WINDOW, message=message
            )
            if moved and row.state != ClusterState.WAITING_WINDOW:
                self.log(message)
            if moved:
                row.state, row.message = ClusterState.WAITING_WINDOW, message
        return opens, message

    def start(self, row: UpdateRunCluster) -> bool:
        """Baseline, mark changing (unless skipped meanwhile), then start the change."""
        cluster = row.cluster
        if cluster is None:
            row.state, row.skip_reason = ClusterState.SKIPPED, "The cluster was deleted."
            self.save_row(row, "state", "skip_reason")
            self.log(f"{row.cluster_name}: skipped (the cluster was deleted)")
            return False
        cluster.refresh_from_db(fields=["status", "status_reason"])
        if cluster.status != ClusterStatus.READY:
            # Changing an unhealthy cluster would fail its gates and revert the whole run
            # for a problem the change did not cause: leave it, and say so.
            reason = f"It was {cluster.get_status_display()} when its turn came; not changed."
            skipped = UpdateRunCluster.objects.filter(pk=row.pk, state__in=STARTABLE).update(
                state=ClusterState.SKIPPED, skip_reason=reason, message=reason
            )
            if skipped:
                row.state, row.skip_reason, row.message = ClusterState.SKIPPED, reason, reason
                self.log(f"{row.cluster_name}: skipped ({reason})", LogLevel.WARNING)
            return False
        baseline = gate_baseline(cluster, config=self.run.gates)
        moved = UpdateRunCluster.objects.filter(pk=row.pk, state__in=STARTABLE).update(
            state=ClusterState.CHANGING,
            started_at=self.now,
            baseline=baseline,
            change_state={},
            message="",
        )
        if not moved:  # skipped by a user meanwhile
            row.refresh_from_db()
            return False
        row.state, row.started_at, row.baseline = ClusterState.CHANGING, self.now, baseline
        self.log(f"{row.cluster_name}: changing {row.from_value} → {row.to_value}")
        self.begin(row, cluster)
        return True

    def begin(self, row: UpdateRunCluster, cluster: Cluster) -> bool:
        """Start the change on `cluster`; a refusal (the run's user may not make this change
        there, the cluster is busy) fails the cluster instead of the check."""
        try:
            state = self.change.start(cluster, actor=self.actor)
        except (PermissionDenied, ValidationError) as error:
            reason = "; ".join(getattr(error, "messages", None) or [str(error)])
            self.fail(row, reason or "refused")
            return False
        row.change_state = stored_state(state)
        self.save_row(row, "change_state")
        return True

    # ----------------------------------------------------------------- the endings

    def stop_failed(self) -> float | None:
        """Let the changes under way finish, then revert (or fail, if irreversible)."""
        active = [r.cluster_name for r in self.rows if r.state in ACTIVE]
        if active:
            self.say(f"Stopping: {self.run.failure}; finishing {', '.join(active)}")
            return POLL_SECONDS
        for stage in self.stages:
            if stage.state in (StageState.RUNNING, StageState.SOAKING):
                self.stage_state(stage, StageState.FAILED, "failed")
        if not self.change.reversible:
            self.finish_irreversible()
            return None
        reverter = Reverter(self)
        if self.set_state(
            RunState.REVERTING,
            allowed=(RunState.RUNNING, RunState.WAITING_APPROVAL, RunState.PAUSED),
        ):
            self.log(
                f"Reverting {len(reverter.changed())} changed cluster(s), latest first",
                LogLevel.WARNING,
            )
        if reverter.step():
            return POLL_SECONDS
        restored, failed = reverter.outcome()
        state = RunState.FAILED if failed else RunState.REVERTED
        text = f"{self.run.failure}; reverted {len(restored)} cluster(s)" + (
            f"; could not revert {', '.join(failed)}" if failed else ""
        )
        self.finish(
            state,
            OperationState.FAILED,
            error=text,
            result={
                "reverted": restored,
                "revert_failed": failed,
                "rolled_back": restored,
            },
        )
        return None

    def finish_irreversible(self) -> None:
        values, summary = final_values(self.rows)
        self.finish(
            RunState.FAILED,
            OperationState.FAILED,
            error=f"{self.run.failure}. {self.change.describe()} cannot be reverted: {summary}",
            result={"clusters": values},
        )

    def stop_aborted(self) -> float | None:
        active = [r.cluster_name for r in self.rows if r.state in ACTIVE]
        if active:
            self.say(f"Aborting: finishing {', '.join(active)}")
            return POLL_SECONDS
        changed = [r.cluster_name for r in self.rows if r.state == ClusterState.SUCCEEDED]
        self.finish(
            RunState.ABORTED,
            OperationState.CANCELED,
            message=f"Aborted; {len(changed)} cluster(s) changed, nothing reverted",
            result={"changed": changed},
        )
        return None

    def finish_succeeded(self) -> None:
        changed = [r for r in self.rows if r.state == ClusterState.SUCCEEDED]
        clusters: list[Cluster] = [r.cluster for r in changed if r.cluster is not None]
        self.change.finish(clusters, actor=self.actor)
        skipped = sum(1 for r in self.rows if r.state == ClusterState.SKIPPED)
        self.finish(
            RunState.SUCCEEDED,
            OperationState.SUCCEEDED,
            message=f"{self.change.describe()}: {len(changed)} cluster(s) changed"
            + (f", {skipped} skipped" if skipped else ""),
            result={"changed": [r.cluster_name for r in changed]},
        )

    def finish(
        self,
        state: RunState,
        operation_state: OperationState,
        *,
        message: str = "",
        error: str = "",
        result: dict[str, Any] | None = None,
    ) -> None:
        text = (message or error)[:500]
        with transaction.atomic():  # both or neither: a run never ends without its operation
            UpdateRun.objects.filter(pk=self.run.pk).exclude(state__in=RUN_FINAL).update(
                state=state, finished_at=self.now, message=text
            )
            operation_finish(
                operation_id=self.operation_id,
                state=operation_state,
                message=message,
                error=error,
                result=result,
            )
        self.run.state, self.run.message = state, text


def _unloadable(run: UpdateRun, now: datetime, error: ValidationError) -> None:
    """The run's change no longer loads (its policy or application was deleted, its kind
    is gone): nothing more can start or be followed; the run fails saying why."""
    text = f"The change can no longer be applied: {' '.join(error.messages)}"[:500]
    with transaction.atomic():
        UpdateRun.objects.filter(pk=run.pk).exclude(state__in=RUN_FINAL).update(
            state=RunState.FAILED, finished_at=now, message=text, failure=text
        )
        assert run.operation_id is not None
        operation_finish(operation_id=run.operation_id, state=OperationState.FAILED, error=text)


@exclusive_operation
def run_check(*, operation_id: UUID, tick: int | None = None, now: datetime | None = None) -> None:
    """One check of the run whose operation this is. `tick` is the check a message was sent
    for; None (the first message, a resend by the operations sweeper) does the check that
    is due, if one is. `now` is for tests (a clock they move)."""
    now = now or timezone.now()
    if not operation_claim(operation_id=operation_id):
        return
    run = (
        UpdateRun.objects.select_related("team", "created_by")
        .filter(operation_id=operation_id)
        .first()
    )
    if run is None:
        operation_finish(
            operation_id=operation_id, state=OperationState.FAILED, error="The run was deleted."
        )
        return
    if tick is not None and tick != run.tick:
        return  # a duplicate of a check already done
    if (
        tick is None
        and run.check_at is not None
        and (wait := (run.check_at - now).total_seconds()) > 0
    ):
        # Not due: this message stands in for the tick's own, should that have been lost; a
        # spare one is dropped by the tick comparison above.
        operation_send_check(operation_id, RUN_KIND, tick=run.tick, countdown=wait)
        return
    try:
        check = Check(run, now)
    except ValidationError as error:
        _unloadable(run, now, error)
        return
    delay = check.advance()
    if delay is None:
        return
    with transaction.atomic():
        moved = UpdateRun.objects.filter(pk=run.pk, tick=run.tick).update(
            tick=run.tick + 1, check_at=now + timedelta(seconds=delay)
        )
        if moved:  # exactly one next message per tick
            # Alive: the operations sweeper resends only runs whose checks stopped.
            Operation.objects.filter(pk=operation_id).update(updated_at=timezone.now())
            next_tick = run.tick + 1
            transaction.on_commit(
                lambda: operation_send_check(
                    operation_id, RUN_KIND, tick=next_tick, countdown=delay
                )
            )
