"""After a failure: reverting what a run changed (reversible kinds), or saying which value
each cluster is on (irreversible ones).

Reverts go stage by stage, the latest stage first; within a stage, the clusters changed
last go first, at most the group's concurrency at once. A cluster whose revert fails is
left as it is and named in the run's error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError

from operations.choices import LogLevel
from updates.change_state import loaded_state, stored_state
from updates.choices import ClusterState
from updates.models import UpdateRunCluster

if TYPE_CHECKING:
    from updates.engine import Check

CHANGED = (ClusterState.SUCCEEDED, ClusterState.FAILED)


def _latest_first(row: UpdateRunCluster) -> tuple[int, float, int]:
    started = row.started_at.timestamp() if row.started_at else 0.0
    return (-row.stage_index, -started, -row.position)


class Reverter:
    def __init__(self, check: Check) -> None:
        self.check = check
        self.rows = check.rows

    def changed(self) -> list[UpdateRunCluster]:
        """Clusters whose change started and whose revert has not (latest first)."""
        return sorted(
            (
                r
                for r in self.rows
                # A change refused at its start (no state kept) changed nothing.
                if r.started_at is not None
                and r.change_state
                and r.state in CHANGED
                and r.revert_state is None
            ),
            key=_latest_first,
        )

    def step(self) -> bool:
        """Follow the reverts under way and start the next ones; False when all are over."""
        for row in self.rows:
            if row.state == ClusterState.REVERTING:
                self.poll(row)
        reverting = [r for r in self.rows if r.state == ClusterState.REVERTING]
        waiting = self.changed()
        if not reverting and not waiting:
            return False
        stage = max(r.stage_index for r in [*reverting, *waiting])
        limits = self.check.group_limits(self.check.stages[stage])
        busy: dict[str, int] = {}
        for row in reverting:
            busy[row.group] = busy.get(row.group, 0) + 1
        for row in waiting:
            if row.stage_index != stage or busy.get(row.group, 0) >= limits.get(row.group, 1):
                continue
            self.start(row)
            busy[row.group] = busy.get(row.group, 0) + 1
        names = [r.cluster_name for r in self.rows if r.state == ClusterState.REVERTING]
        self.check.say(f"Reverting {', '.join(names)} ({self.check.run.failure})")
        return True

    def start(self, row: UpdateRunCluster) -> None:
        moved = UpdateRunCluster.objects.filter(
            pk=row.pk, state__in=CHANGED, revert_state__isnull=True
        ).update(state=ClusterState.REVERTING, message="")
        if not moved:
            return
        row.state = ClusterState.REVERTING
        self.check.log(f"{row.cluster_name}: reverting to {row.from_value}", LogLevel.WARNING)
        self.begin(row)

    def begin(self, row: UpdateRunCluster) -> None:
        assert row.cluster is not None
        try:
            state = self.check.change.revert(
                row.cluster, loaded_state(row.change_state), actor=self.check.actor
            )
        except (PermissionDenied, ValidationError) as error:
            reason = "; ".join(getattr(error, "messages", None) or [str(error)])
            self.end(row, ClusterState.FAILED, f"revert failed: {reason}")
            self.check.log(f"{row.cluster_name}: revert failed: {reason}", LogLevel.ERROR)
            return
        row.revert_state = stored_state(state)
        row.save(update_fields=["revert_state"])

    def poll(self, row: UpdateRunCluster) -> None:
        if row.cluster is None:
            self.end(row, ClusterState.FAILED, "revert failed: the cluster was deleted")
            return
        if row.revert_state is None:  # marked reverting, its revert never stored
            self.begin(row)
            return
        step = self.check.change.poll(row.cluster, loaded_state(row.revert_state))
        if step.state == "done":
            self.end(row, ClusterState.REVERTED, f"reverted to {row.from_value}")
            self.check.log(f"{row.cluster_name}: reverted to {row.from_value}", LogLevel.WARNING)
        elif step.state == "failed":
            self.end(row, ClusterState.FAILED, f"revert failed: {step.message}")
            self.check.log(f"{row.cluster_name}: revert failed: {step.message}", LogLevel.ERROR)

    def end(self, row: UpdateRunCluster, state: ClusterState, message: str) -> None:
        row.state, row.message, row.finished_at = state, message[:500], self.check.now
        if row.revert_state is None:
            row.revert_state = {"failed": True}
        row.save(update_fields=["state", "message", "finished_at", "revert_state"])

    def outcome(self) -> tuple[list[str], list[str]]:
        """(clusters reverted, clusters whose revert failed)."""
        restored = [r.cluster_name for r in self.rows if r.state == ClusterState.REVERTED]
        failed = [
            r.cluster_name
            for r in self.rows
            if r.state == ClusterState.FAILED and r.revert_state is not None
        ]
        return restored, failed


def value_of(row: UpdateRunCluster) -> str:
    """The value a cluster is on after an irreversible run stopped."""
    if row.state == ClusterState.SUCCEEDED:
        return row.to_value
    if row.state == ClusterState.FAILED:
        # A gate failed after the change was done; a change that failed may be anywhere.
        return row.to_value if row.message.startswith("gates failed") else "unknown"
    return row.from_value


def final_values(rows: list[UpdateRunCluster]) -> tuple[dict[str, dict[str, Any]], str]:
    """Per cluster {state, from, to, on}, and a sentence grouping clusters by value."""
    values = {
        r.cluster_name: {
            "state": r.state,
            "from": r.from_value,
            "to": r.to_value,
            "on": value_of(r),
        }
        for r in rows
    }
    by_value: dict[str, list[str]] = {}
    for name, value in values.items():
        by_value.setdefault(str(value["on"]), []).append(name)
    summary = "; ".join(
        f"on {value}: {', '.join(names)}" if value != "unknown" else f"unknown: {', '.join(names)}"
        for value, names in by_value.items()
    )
    return values, summary
