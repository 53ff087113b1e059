"""Rollouts: bring the clusters of a placement decision to an application version, step by
step under a strategy, as an Operation with live progress.

- all_at_once: one step with every cluster;
- rolling: steps of `max_concurrency` clusters, each available before the next starts;
- canary: the first `canary_clusters` (by rank), available and then still available after
  `canary_soak_seconds`, then the rest in steps of `max_concurrency`.

A step that is not available within `health_timeout_seconds` (or cannot be applied) fails
the rollout; with `rollback` the clusters changed so far go back to what they ran before
(or lose the application, if it is new to them). Clusters that left the decision lose the
application at the end, except that a decision that chose nothing never empties an
application that runs somewhere (`applications.guard`): only a confirmed
`application_evict_everywhere_start` does.

No task waits: a health wait or a canary soak is a check re-sent with a countdown, and the
rollout's position between checks is a `RolloutProgress` row. Each check message carries the
tick it was sent for; the check that finishes a tick moves the row to the next one with a
conditional update and sends exactly one next message, so a duplicate (a redelivery, the
operations sweeper's resend) finds the row moved on and does nothing. Applying is idempotent
and each cluster's previous version is remembered once, so a check whose worker died is
simply done again.
"""

from applications.rollout.deletion import (
    DELETE_KIND,
    application_delete_run,
    application_delete_start,
)
from applications.rollout.run import POLL_SECONDS, SOAK_CHECK_SECONDS, rollout_run
from applications.rollout.start import (
    ROLLOUT_KIND,
    RemovalRefused,
    application_evict_everywhere_start,
    rollout_in_progress,
    rollout_start,
    rollout_steps,
)

__all__ = [
    "DELETE_KIND",
    "POLL_SECONDS",
    "ROLLOUT_KIND",
    "SOAK_CHECK_SECONDS",
    "RemovalRefused",
    "application_delete_run",
    "application_delete_start",
    "application_evict_everywhere_start",
    "rollout_in_progress",
    "rollout_run",
    "rollout_start",
    "rollout_steps",
]
