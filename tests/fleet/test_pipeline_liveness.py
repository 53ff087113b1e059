"""Liveness of the periodic pipelines: /healthz/pipeline, /readyz's information, the
overview's banner for admins (operations/pipelines.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from clusters.tasks import clusters_collect_fanout_task
from core.health import CHECKS
from costs.tasks import cost_compute_task
from operations.models import PipelineRun
from operations.pipelines import interval_claim, pipeline_ran
from policies.tasks import policies_evaluate_fanout_task
from tests.factories import Member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def intervals(settings: Any) -> None:
    """Collection every 30 s, the policy sweep and cost every 10 minutes: overdue past
    60 s and 20 minutes without a run."""
    settings.CELERY_BEAT_SCHEDULE = {
        "clusters-collect": {
            "task": "clusters.tasks.clusters_collect_fanout_task",
            "schedule": 30.0,
        },
        "policies-evaluate": {
            "task": "policies.tasks.policies_evaluate_fanout_task",
            "schedule": 600.0,
        },
        "cost-compute": {"task": "costs.tasks.cost_compute_task", "schedule": 600.0},
    }


def stopped_beat() -> None:
    """Collection 61 s and cost 1201 s ago (both past two intervals), policies 1100 s ago
    (inside two intervals, with room for a slow request)."""
    now = timezone.now()
    pipeline_ran("collection", at=now - timedelta(seconds=61))
    pipeline_ran("policies", at=now - timedelta(seconds=1100))
    pipeline_ran("costs", at=now - timedelta(seconds=1201))


def test_pipeline_health_turns_red_when_runs_stop_and_green_after_they_run(client: Client) -> None:
    # given: runs that stopped
    stopped_beat()
    # when
    response = client.get("/healthz/pipeline")
    # then: 503, collection and cost overdue, policies not yet
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "overdue"
    assert {name: p["overdue"] for name, p in body["pipelines"].items()} == {
        "collection": True,
        "policies": False,
        "costs": True,
    }
    assert body["pipelines"]["collection"]["interval_seconds"] == 30
    assert body["pipelines"]["costs"]["interval_seconds"] == 600

    # when: each fan-out task runs (the workers' path, called in-process)
    clusters_collect_fanout_task()
    policies_evaluate_fanout_task()
    cost_compute_task()
    # then: green, each last run is now
    response = client.get("/healthz/pipeline")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    for pipeline in body["pipelines"].values():
        assert pipeline["overdue"] is False
        ran = datetime.fromisoformat(pipeline["last_run"])
        assert timezone.now() - ran < timedelta(seconds=30)


def test_pipeline_health_needs_no_login_and_shows_names_and_times_only(client: Client) -> None:
    stopped_beat()
    body = client.get("/healthz/pipeline").json()
    assert set(body) == {"status", "pipelines"}
    assert set(body["pipelines"]) == {"collection", "policies", "costs"}
    for pipeline in body["pipelines"].values():
        assert set(pipeline) == {"last_run", "interval_seconds", "overdue"}


def test_a_pipeline_that_never_ran_since_the_rows_went_is_not_overdue(client: Client) -> None:
    PipelineRun.objects.all().delete()
    response = client.get("/healthz/pipeline")
    assert response.status_code == 200
    assert response.json()["pipelines"]["collection"] == {
        "last_run": None,
        "interval_seconds": 30,
        "overdue": False,
    }


def test_readyz_names_overdue_pipelines_but_stays_ready(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: every dependency answers (a slow broker on a busy machine is another test's
    # subject, tests/fleet/test_health.py) and two pipelines are overdue
    for name in list(CHECKS):
        monkeypatch.setitem(CHECKS, name, lambda: None)
    stopped_beat()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert sorted(response.json()["pipelines_overdue"]) == ["collection", "costs"]


def test_the_overview_shows_admins_a_banner_and_viewers_none(owner: Member, viewer: Member) -> None:
    stopped_beat()
    admin_page = owner.page.get("/").content.decode()
    viewer_page = viewer.page.get("/").content.decode()
    assert 'id="pipeline-banner"' in admin_page
    assert "Pipeline overdue: collection" in admin_page
    assert "costs (last run 20" in admin_page
    assert "policies" not in admin_page.split('id="pipeline-banner"')[1].split("</ul>")[0]
    assert 'id="pipeline-banner"' not in viewer_page


def test_the_banner_goes_once_the_pipelines_ran(owner: Member) -> None:
    stopped_beat()
    for name in ("collection", "policies", "costs"):
        pipeline_ran(name)
    assert 'id="pipeline-banner"' not in owner.page.get("/").content.decode()


def test_an_interval_is_claimed_once() -> None:
    # 10:00:05 and 10:00:55 share the minute from 10:00:00; 10:01:00 starts the next one
    base = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
    first = interval_claim("entry", 60, now=base + timedelta(seconds=5))
    assert first == base
    assert interval_claim("entry", 60, now=base + timedelta(seconds=55)) is None
    assert interval_claim("other-entry", 60, now=base + timedelta(seconds=55)) == base
    assert interval_claim("entry", 60, now=base + timedelta(seconds=60)) == base + timedelta(
        seconds=60
    )


def test_pipeline_health_without_a_database_is_503_without_details(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(**kwargs: Any) -> None:
        raise OperationalError("connection to postgres://keelson:s3cret@db failed")

    monkeypatch.setattr("dashboard.views.pipeline_liveness", unreachable)
    response = client.get("/healthz/pipeline")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unknown",
        "error": "database unreachable (OperationalError)",
    }
