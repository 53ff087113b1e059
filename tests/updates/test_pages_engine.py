"""Update-run pages through the real services (updates.services): strategies and windows
saved from their forms, a draft created from the new-run form with its preview, and the
run's buttons (start, approve, skip, pause, resume, abort). The change kind is the test
one of pages_change.py; the engine's checks are driven by calling update_run_check."""

from __future__ import annotations

import pytest

from accounts.models import Team
from clusters.models import ClusterSet
from tests.factories import Member, make_cluster
from updates import changes
from updates.models import MaintenanceWindow, UpdateRun, UpdateStrategy
from updates.services import update_run_check

pytestmark = pytest.mark.django_db

STAGES_YAML = """\
- name: canary
  approval: true
  groups: [{name: canary, selector: ring=canary}]
  max_concurrency: 1
  soak_seconds: 0
- name: eu
  groups: [{name: eu, selector: region=eu}]
  max_concurrency: 1
  soak_seconds: 0
"""


@pytest.fixture(autouse=True)
def instant_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        changes.CHANGES, "kubernetes_version", "tests.updates.pages_change.InstantChange"
    )


@pytest.fixture
def fleet(team: Team) -> None:
    make_cluster(team=team, name="canary-1", status="ready", labels={"ring": "canary"})
    make_cluster(team=team, name="eu-1", status="ready", labels={"region": "eu"})
    make_cluster(team=team, name="eu-2", status="ready", labels={"region": "eu"})


def _strategy(operator: Member, stages: str = STAGES_YAML) -> UpdateStrategy:
    body = {"team": "payments", "name": "canary-then-eu", "stages": stages}
    response = operator.page.post("/updates/strategies/new/", body)
    assert response.status_code == 302, response.content.decode()
    return UpdateStrategy.objects.get(name="canary-then-eu")


def _draft(operator: Member, strategy: UpdateStrategy) -> UpdateRun:
    body = {
        "name": "to 1.29",
        "strategy": str(strategy.pk),
        "change_kind": "kubernetes_version",
        "version": "v1.29.4",
        "mode": "enforce",
    }
    response = operator.page.post("/updates/new/", body)
    assert response.status_code == 302, response.content.decode()
    run = UpdateRun.objects.get(name="to 1.29")
    assert response["Location"] == f"/updates/{run.pk}/"
    return run


def test_strategy_errors_name_the_path(operator: Member) -> None:
    bad = "- name: a\n  groups: [{name: g, selector: 'a in ('}]\n  max_concurrency: 1\n"
    page = operator.page.post(
        "/updates/strategies/new/", {"team": "payments", "name": "bad", "stages": bad}
    )
    assert page.status_code == 400
    assert "stages[0].groups[0].selector" in page.content.decode()
    assert not UpdateStrategy.objects.filter(name="bad").exists()


def test_window_saved_from_the_form_and_empty_days_refused(operator: Member, team: Team) -> None:
    cluster_set = ClusterSet.objects.create(name="eu", team=team, selector="region=eu")
    body = {
        "team": "payments",
        "name": "weekend",
        "cluster_set": str(cluster_set.pk),
        "days": ["6"],
        "start_time": "02:00",
        "duration_minutes": "120",
        "timezone": "Europe/Berlin",
        "enabled": "on",
    }
    assert operator.page.post("/updates/windows/new/", body).status_code == 302
    window = MaintenanceWindow.objects.get(name="weekend")
    assert window.days == [6] and window.timezone == "Europe/Berlin"
    page = operator.page.post("/updates/windows/new/", {**body, "name": "never", "days": []})
    assert page.status_code == 400 and "days" in page.content.decode()
    assert not MaintenanceWindow.objects.filter(name="never").exists()


def test_draft_from_the_form_with_its_preview(
    operator: Member, viewer: Member, fleet: None
) -> None:
    run = _draft(operator, _strategy(operator))
    assert run.state == "draft" and run.change_params == {"version": "v1.29.4"}
    html = viewer.page.get(f"/updates/{run.pk}/").content.decode()
    assert "canary-1" in html and "eu-2" in html
    preview = viewer.page.get(f"/updates/{run.pk}/preview/").content.decode()
    assert "Expected duration" in preview
    assert "Deployment web-eu-1" in preview  # the change's impact, per cluster


def test_start_approve_skip_pause_resume_abort(
    operator: Member, owner: Member, fleet: None
) -> None:
    run = _draft(operator, _strategy(operator))
    # a Kubernetes upgrade takes an admin to start (the run acts as its starter)
    page = operator.page.post(f"/updates/{run.pk}/start/", follow=True)
    assert "You need the admin role in the team to start Kubernetes upgrade runs." in (
        page.content.decode()
    )
    run.refresh_from_db()
    assert run.state == "draft"
    assert owner.page.post(f"/updates/{run.pk}/start/").status_code == 302
    run.refresh_from_db()
    assert run.state != "draft" and run.operation_id is not None
    update_run_check(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == "waiting_approval"
    html = operator.page.get(f"/updates/{run.pk}/").content.decode()
    assert "Approve stage canary" in html
    operator.page.post(f"/updates/{run.pk}/approve/", {"stage_index": "0"})
    stage = run.run_stages.get(index=0)
    assert stage.approved_by_id == operator.user.pk and stage.approved_at is not None
    operator.page.post(f"/updates/{run.pk}/skip/", {"cluster": "eu-2"})
    assert run.run_clusters.get(cluster_name="eu-2").state == "skipped"
    operator.page.post(f"/updates/{run.pk}/pause/")
    run.refresh_from_db()
    assert run.state == "paused"
    operator.page.post(f"/updates/{run.pk}/resume/")
    run.refresh_from_db()
    assert run.state != "paused"
    operator.page.post(f"/updates/{run.pk}/abort/")
    html = operator.page.get(f"/updates/{run.pk}/").content.decode()
    # asked once: the run says so and ends at its next check (the engine's tests follow it)
    assert "Aborting (by " in html and ">Abort<" not in html and ">Pause<" in html
    # an action the run's state refuses: the service's message, nothing changes
    page = operator.page.post(f"/updates/{run.pk}/resume/", follow=True)
    assert page.status_code == 200 and 'class="error"' in page.content.decode()
    run.refresh_from_db()
    assert run.state == "running"
