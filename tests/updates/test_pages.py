"""Update-run pages by role, on runs made with the ORM: the list, a draft with its plan,
a run under way with its stages and clusters, the strategy and window forms (their own
checks: bad YAML, bad times), and the refusals (viewers get no button and a 403)."""

from __future__ import annotations

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from tests.factories import Member
from tests.updates.runs_pages_support import approve_canary, make_draft, make_running, make_strategy
from updates.models import MaintenanceWindow, UpdateRun

pytestmark = pytest.mark.django_db


def test_runs_list_shows_state_change_and_progress(
    viewer: Member, operator: Member, team: Team
) -> None:
    make_draft(team, operator.user)
    make_running(team, operator.user)
    page = viewer.page.get("/updates/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "kubernetes 1.29" in html and "kubernetes 1.29 fleet" in html
    assert "Draft (previewed, not started)" in html and "Waiting for approval" in html
    assert "version=v1.29.4" in html and "d-strategy" in html and "r-strategy" in html
    # both have one of three clusters done: the running run's canary, the draft's skipped one
    assert html.count("1 / 3") == 2
    assert "New run" not in html
    assert "New run" in operator.page.get("/updates/").content.decode()
    assert 'href="/updates/"' in html and ">Updates</a>" in html  # the main menu


def test_draft_page_shows_the_plan_and_start_only_to_operators(
    viewer: Member, operator: Member, team: Team
) -> None:
    run = make_draft(team, operator.user)
    html = viewer.page.get(f"/updates/{run.pk}/").content.decode()
    assert "Stage 1: canary" in html and "Stage 2: eu" in html
    assert "<code>v1.28.3</code> → <code>v1.29.4</code>" in html
    assert "Skipped: the local provider runs one Kubernetes version" in html
    assert f'hx-get="/updates/{run.pk}/preview/"' in html  # the preview loads after the page
    assert "Needs approval before it starts" in html  # stage eu
    assert ">Start<" not in html and "Delete draft" not in html and ">Skip<" not in html
    assert "data-live-url" not in html  # nothing runs yet
    mine = operator.page.get(f"/updates/{run.pk}/").content.decode()
    assert f'action="/updates/{run.pk}/start/"' in mine and "Delete draft" in mine


def test_run_under_way_shows_stages_clusters_and_actions_by_role(
    viewer: Member, operator: Member, owner: Member, team: Team
) -> None:
    run, operation = make_running(team, operator.user)
    approve_canary(run, owner.user)
    html = viewer.page.get(f"/updates/{run.pk}/").content.decode()
    assert f'data-live-url="/ws/operations/{operation.pk}/"' in html
    assert 'value="33"' in html and "stage eu waits for approval" in html
    assert "Waits for approval" in html and f"Approved by {owner.user.username}" in html
    assert "waits for its window (opens Sat 02:00 Europe/Berlin)" in html
    assert "Waiting for its maintenance window" in html and "Succeeded" in html
    assert "1 of 3 clusters done (33 %)" in html
    for button in ("Approve stage eu", ">Pause<", ">Abort<", ">Skip<"):
        assert button not in html, button
    mine = operator.page.get(f"/updates/{run.pk}/").content.decode()
    assert "Approve stage eu" in mine and ">Pause<" in mine and ">Abort<" in mine
    assert ">Resume<" not in mine
    # skip is offered for the clusters that have not changed, not for the one that did
    assert 'aria-label="Skip r-eu-1"' in mine and 'aria-label="Skip r-eu-2"' in mine
    assert 'aria-label="Skip r-canary-1"' not in mine


def test_soaking_stage_says_until_when(viewer: Member, operator: Member, team: Team) -> None:
    run, _ = make_running(team, operator.user)
    stage = run.run_stages.get(index=0)
    stage.state, stage.soak_until = "soaking", stage.finished_at
    stage.save()
    html = viewer.page.get(f"/updates/{run.pk}/progress/").content.decode()
    assert "Soaking until" in html and "<html" not in html  # the fragment alone
    assert 'datetime="2026-12-01T09:30:00' in html


def test_paused_run_offers_resume(operator: Member, team: Team) -> None:
    run, _ = make_running(team, operator.user)
    UpdateRun.objects.filter(pk=run.pk).update(state="paused")
    html = operator.page.get(f"/updates/{run.pk}/progress/").content.decode()
    assert ">Resume<" in html and ">Pause<" not in html and ">Abort<" in html


def test_viewer_gets_403_on_every_action_and_nothing_changes(
    viewer: Member, outsider: Member, operator: Member, team: Team
) -> None:
    draft = make_draft(team, operator.user)
    run, _ = make_running(team, operator.user)
    posts = [
        (f"/updates/{draft.pk}/start/", {}),
        (f"/updates/{run.pk}/pause/", {}),
        (f"/updates/{run.pk}/resume/", {}),
        (f"/updates/{run.pk}/abort/", {}),
        (f"/updates/{run.pk}/approve/", {"stage_index": "1"}),
        (f"/updates/{run.pk}/skip/", {"cluster": "r-eu-2"}),
        (f"/updates/{draft.pk}/delete/", {}),
    ]
    for path, body in posts:
        assert viewer.page.post(path, body).status_code == 403, path
        assert outsider.page.post(path, body).status_code == 404, path
    assert viewer.page.get(f"/updates/{draft.pk}/delete/").status_code == 403
    assert outsider.page.get(f"/updates/{run.pk}/").status_code == 404
    assert outsider.page.get(f"/updates/{run.pk}/progress/").status_code == 404
    assert "kubernetes" not in outsider.page.get("/updates/").content.decode()
    states = dict(UpdateRun.objects.values_list("name", "state"))
    assert states == {"kubernetes 1.29": "draft", "kubernetes 1.29 fleet": "waiting_approval"}
    assert AuditEvent.objects.filter(action="request.denied").count() == len(posts) + 1
    assert viewer.page.get(f"/updates/{run.pk}/pause/").status_code == 405


def test_operator_deletes_a_draft_after_confirming(operator: Member, team: Team) -> None:
    draft = make_draft(team, operator.user)
    confirm = operator.page.get(f"/updates/{draft.pk}/delete/").content.decode()
    assert "Delete draft run kubernetes 1.29?" in confirm and "Keep it" in confirm
    response = operator.page.post(f"/updates/{draft.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/updates/"
    assert not UpdateRun.objects.filter(pk=draft.pk).exists()
    event = AuditEvent.objects.get(action="update_run.delete")
    assert event.actor_id == operator.user.pk and event.target_id == str(draft.pk)
    # a run that started is history: refused, with the reason
    run, _ = make_running(team, operator.user)
    page = operator.page.post(f"/updates/{run.pk}/delete/", follow=True).content.decode()
    assert "Only a draft can be deleted; this run is Waiting for approval." in page
    assert UpdateRun.objects.filter(pk=run.pk).exists()


def test_approve_with_a_bad_stage_index_says_so(operator: Member, team: Team) -> None:
    run, _ = make_running(team, operator.user)
    page = operator.page.post(f"/updates/{run.pk}/approve/", {"stage_index": "x"}, follow=True)
    assert "stage index: give the number of the stage to approve." in page.content.decode()
    assert run.run_stages.get(index=1).approved_by_id is None


# --- strategies -------------------------------------------------------------------------


def test_strategies_list_and_edit_form(viewer: Member, operator: Member, team: Team) -> None:
    strategy = make_strategy(team)
    html = viewer.page.get("/updates/strategies/").content.decode()
    assert "canary-then-eu" in html and "<code>region=eu</code>" in html
    assert "at most 50% at once" in html and "<strong>approval</strong>" in html
    assert "New strategy" not in html and "Edit strategy" not in html
    assert viewer.page.get("/updates/strategies/new/").status_code == 403
    assert viewer.page.get(f"/updates/strategies/{strategy.pk}/edit/").status_code == 403
    form = operator.page.get(f"/updates/strategies/{strategy.pk}/edit/").content.decode()
    assert "selector: region=eu" in form and "max_concurrency: 50%" in form  # YAML
    assert "stages[1].groups[0].selector" in form  # the format explained beside it


def test_strategy_form_refuses_text_that_is_not_a_list_of_stages(
    operator: Member, team: Team
) -> None:
    body = {"team": "payments", "name": "bad", "stages": "- name: a\n  groups: [\n"}
    page = operator.page.post("/updates/strategies/new/", body)
    assert page.status_code == 400
    assert "The stages are not valid YAML at line 2" in page.content.decode()
    page = operator.page.post("/updates/strategies/new/", {**body, "stages": "name: a"})
    assert page.status_code == 400
    assert "The stages must be a list (one item per stage)." in page.content.decode()
    page = operator.page.post("/updates/strategies/new/", {**body, "name": "Not A Slug"})
    assert (
        page.status_code == 400
        and "letters, numbers, underscores or hyphens" in page.content.decode()
    )
    page = operator.page.post("/updates/strategies/new/", {**body, "team": "elsewhere"})
    assert page.status_code == 400 and "Select a valid choice" in page.content.decode()


def test_strategy_delete_asks_first(operator: Member, viewer: Member, team: Team) -> None:
    strategy = make_strategy(team)
    page = operator.page.get(f"/updates/strategies/{strategy.pk}/delete/").content.decode()
    assert "Delete strategy canary-then-eu?" in page
    assert "Runs made from it keep their own copy of its stages." in page
    assert viewer.page.post(f"/updates/strategies/{strategy.pk}/delete/").status_code == 403


# --- maintenance windows -----------------------------------------------------------------


def _window(team: Team) -> MaintenanceWindow:
    from datetime import time

    from clusters.models import ClusterSet

    cluster_set = ClusterSet.objects.create(name="eu-data", team=team, selector="region=eu")
    return MaintenanceWindow.objects.create(
        team=team,
        name="weekend-nights",
        cluster_set=cluster_set,
        days=[6, 7],
        start_time=time(2, 0),
        duration_minutes=120,
        timezone="Europe/Berlin",
    )


def test_windows_list_and_form(viewer: Member, operator: Member, team: Team) -> None:
    window = _window(team)
    html = viewer.page.get("/updates/windows/").content.decode()
    assert "weekend-nights" in html and "Sat, Sun 02:00 for 120 min" in html
    assert "Europe/Berlin" in html and "eu-data" in html and "New window" not in html
    assert viewer.page.get("/updates/windows/new/").status_code == 403
    form = operator.page.get(f"/updates/windows/{window.pk}/edit/").content.decode()
    assert '<option value="Europe/Berlin" selected>' in form
    assert '<option value="America/Argentina/Buenos_Aires">' in form  # every IANA zone
    assert 'value="6" id="id_days_5" checked' in form and 'value="02:00"' in form
    assert f'<option value="{window.cluster_set_id}" selected>eu-data (payments)</option>' in form


def test_window_form_refuses_bad_times_and_zones(operator: Member, team: Team) -> None:
    window = _window(team)
    body = {
        "team": "payments",
        "name": "nights",
        "cluster_set": str(window.cluster_set_id),
        "days": ["1"],
        "start_time": "25:00",
        "duration_minutes": "0",
        "timezone": "Mars/Olympus",
    }
    page = operator.page.post("/updates/windows/new/", body)
    assert page.status_code == 400
    html = page.content.decode()
    assert "Enter a valid time." in html
    assert "Ensure this value is greater than or equal to 1." in html
    assert "Select a valid choice. Mars/Olympus is not one of the available choices." in html
    assert MaintenanceWindow.objects.count() == 1


# --- a new run ---------------------------------------------------------------------------


def test_new_run_form_by_role_and_its_own_checks(
    viewer: Member, operator: Member, team: Team
) -> None:
    make_strategy(team)
    assert viewer.page.get("/updates/new/").status_code == 403
    html = operator.page.get("/updates/new/").content.decode()
    assert "payments / canary-then-eu" in html
    for kind in ("kubernetes_version", "node_pool", "policy_mode", "application_version"):
        assert f'data-kind="{kind}"' in html
    assert "Only clusters past their version&#x27;s end of life" in html
    strategy_pk = html.split('<option value="')[1].split('"')[0]
    body = {
        "name": "",
        "strategy": strategy_pk,
        "change_kind": "kubernetes_version",
        "mode": "enforce",
        "gates": "{workloads: [",
        "version": "v1.29.4",
    }
    page = operator.page.post("/updates/new/", body)
    assert page.status_code == 400
    html = page.content.decode()
    assert "This field is required." in html and "The gates are not valid YAML" in html
    page = operator.page.post("/updates/new/", {**body, "name": "x", "gates": "[1]"})
    assert "The gates must be a mapping" in page.content.decode()
    assert UpdateRun.objects.count() == 0


def test_preview_fragment_template_shows_windows_end_of_life_and_impact() -> None:
    # given a preview as update_run_preview answers it (updates/preview.py's shape)
    from django.template.loader import render_to_string

    from updates.display import preview_context

    cluster = {"from": "v1.27.9", "to": "v1.28.5", "skip_reason": "", "windows": []}
    preview = {
        "change": {"description": "Kubernetes v1.28.5", "reversible": False},
        "to_change": 2,
        "skipped": 1,
        "expected_seconds": 7500,
        "stages": [
            {
                "name": "eu",
                "approval": True,
                "expected_seconds": 7500,
                "window_wait_seconds": 3600,
                "groups": [
                    {
                        "name": "eu-web",
                        "clusters": [
                            {
                                **cluster,
                                "name": "eu-1",
                                "end_of_life": "2024-06-28",
                                "past_end_of_life": True,
                                "windows": ["nights"],
                                "next_window": "2026-12-05T23:00:00+00:00",
                                "next_window_text": "Sat 00:00 Europe/Berlin",
                            },
                            {**cluster, "name": "eu-2", "windows": ["never"]},
                            {**cluster, "name": "eu-3", "skip_reason": "registered, not created"},
                        ],
                    }
                ],
            }
        ],
        "impact": {"eu-1": {"from": "v1.27 reached end of life 2024-06-28"}},
    }
    html = render_to_string("updates/_preview.html", preview_context(preview))
    # then
    assert "Kubernetes v1.28.5" in html and "not reversible" in html
    assert 'Expected duration: <strong data-field="expected-duration">2 h 5 min</strong>' in html
    assert "2 clusters to change, 1 skipped" in html
    assert "Waits for approval first." in html and "of which 1 h waiting for a window" in html
    assert "past (2024-06-28)" in html and 'datetime="2026-12-05T23:00:00' in html
    assert "(Sat 00:00 Europe/Berlin)" in html
    assert "no window opens" in html  # eu-2: in a windowed set whose window never opens
    assert "skipped: registered, not created" in html
    assert "<li>v1.27 reached end of life 2024-06-28</li>" in html
