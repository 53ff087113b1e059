"""Task modules that moved in the layer layout (issue 22) keep answering to their former
names, so messages queued before an upgrade still find their task on the same queue."""

from __future__ import annotations

from typing import Any, cast

import pytest

from core.celery import app as celery_app

# The tasks as the release before the layout named them, and the queue each went to
# (fleet/placement/tasks.py and clusters/cost/tasks.py of that release).
FORMER = {
    "fleet.placement.tasks.application_rollout_task": "placement",
    "fleet.placement.tasks.placement_reconcile_batch_task": "placement",
    "fleet.placement.tasks.placement_reconcile_fanout_task": "placement",
    "fleet.placement.tasks.application_delete_task": "placement",
    "clusters.cost.tasks.cost_compute_task": "costs",
    "clusters.cost.tasks.budgets_check_task": "costs",
    "clusters.cost.tasks.cost_compute_clusters_task": "costs",
}
MOVED = {"fleet.placement.tasks": "applications.tasks", "clusters.cost.tasks": "costs.tasks"}


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    celery_app.loader.import_default_modules()  # what a worker does at start


def _current(former: str) -> str:
    module, _, function = former.rpartition(".")
    return f"{MOVED[module]}.{function}"


@pytest.mark.parametrize("former", sorted(FORMER))
def test_a_former_task_name_runs_the_moved_task_on_its_queue(former: str) -> None:
    assert former in celery_app.tasks, "a message queued before the upgrade would be lost"
    alias, task = celery_app.tasks[former], celery_app.tasks[_current(former)]
    # the function the decorator was given (`run` is wrapped by each task's retry policy)
    assert cast(Any, alias).__wrapped__ is cast(Any, task).__wrapped__
    assert (alias.acks_late, alias.time_limit) == (task.acks_late, task.time_limit)
    for name in (former, task.name):
        assert celery_app.amqp.router.route({}, name)["queue"].name == FORMER[former]


def test_every_task_of_a_moved_module_has_its_former_name() -> None:
    moved = {
        name for name in celery_app.tasks if name.startswith(tuple(f"{m}." for m in MOVED.values()))
    }
    assert moved == {_current(former) for former in FORMER}
