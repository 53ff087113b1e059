"""Every task the code names in a string (sent by name across layers, in the beat schedule,
in operation dispatch) is a registered task: a typo would only show when it is sent."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from core.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "fleet", "dashboard", "alerts", "policies", "applications", "costs", "clusters", "localkube",
    "agent", "kube", "operations", "accounts", "audit", "core",
)  # fmt: skip
NAME = re.compile(r"""["']((?:[a-z_]+\.)+tasks\.[a-z_]+_task)["']""")


def _named_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for match in NAME.finditer(path.read_text()):
                found.setdefault(match[1], str(path.relative_to(ROOT)))
    return found


def test_every_task_named_in_the_code_is_registered() -> None:
    celery_app.loader.import_default_modules()
    named = _named_in_code()
    assert len(named) >= 10  # the scan finds the names (dispatch, collection, sweeps)
    missing = {name: where for name, where in named.items() if name not in celery_app.tasks}
    assert missing == {}


def test_every_beat_entry_names_a_registered_task() -> None:
    celery_app.loader.import_default_modules()
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks and tasks <= set(celery_app.tasks)


def test_a_misspelt_name_would_be_caught() -> None:
    text = 'task_send("clusters.tasks.clusters_colect_shard_task", args=[[1]])'
    assert [m[1] for m in NAME.finditer(text)] == ["clusters.tasks.clusters_colect_shard_task"]
    assert "clusters.tasks.clusters_colect_shard_task" not in celery_app.tasks
