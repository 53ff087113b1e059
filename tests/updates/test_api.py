"""The update runs API: 400s naming the field (nothing created), and a run's whole life
through it (create, preview, start, approval, success), viewers reading only."""

from __future__ import annotations

from typing import Any

from tests.updates.conftest import Clock, Fleet, drive
from tests.updates.scripted import Script
from updates.models import MaintenanceWindow, UpdateRun, UpdateStrategy

API = "/api/v1/"


def fields_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    return dict(response.json()["error"]["fields"])


def test_bad_input_is_a_400_naming_the_field(fleet: Fleet, script: Script) -> None:
    fleet.clusters("one", "c-1")
    api = fleet.operator.api
    bad_stage = {"name": "a", "groups": [{"name": "g", "selector": "region in (eu"}]}
    response = api.post(
        API + "update-strategies/",
        {"team": "platform", "name": "s", "stages": [bad_stage]},
        format="json",
    )
    assert fields_of(response)["stages"][0].startswith("stages[0].groups[0].selector: ")
    fleet.cluster_set("prod", [])
    window = {
        "team": "platform",
        "name": "w",
        "cluster_set": "prod",
        "days": [6],
        "start_time": "02:00",
        "duration_minutes": 120,
        "timezone": "Europe/Berln",
    }
    assert set(fields_of(api.post(API + "maintenance-windows/", window, format="json"))) == {
        "timezone"
    }
    response = api.post(API + "maintenance-windows/", {**window, "days": []}, format="json")
    assert set(fields_of(response)) == {"days", "timezone"}
    response = api.post(
        API + "maintenance-windows/", {**window, "cluster_set": "nope"}, format="json"
    )
    assert set(fields_of(response)) == {"cluster_set", "timezone"}
    response = api.post(
        API + "maintenance-windows/",
        {**window, "timezone": "UTC", "duration_minutes": 0},
        format="json",
    )
    assert set(fields_of(response)) == {"duration_minutes"}
    fleet.strategy([{"name": "a", "groups": [{"name": "g", "selector": "ring=one"}]}])
    run = {"team": "platform", "name": "r", "strategy": "rings", "change_kind": "node_pool"}
    response = api.post(API + "update-runs/", {**run, "change_kind": "teleport"}, format="json")
    assert set(fields_of(response)) == {"change_kind"}
    response = api.post(API + "update-runs/", {**run, "change_params": {}}, format="json")
    assert fields_of(response) == {"change_params": ["image: The image to roll out."]}
    response = api.post(
        API + "update-runs/",
        {**run, "change_params": {"image": "v2"}, "scope": {"eol": "soon"}},
        format="json",
    )
    assert set(fields_of(response)) == {"scope"}
    response = api.post(API + "update-runs/", {**run, "strategy": "nope"}, format="json")
    assert set(fields_of(response)) == {"strategy"}
    assert not MaintenanceWindow.objects.exists() and not UpdateRun.objects.exists()
    assert UpdateStrategy.objects.count() == 1


def test_a_run_through_the_api(fleet: Fleet, clock: Clock, script: Script) -> None:
    fleet.clusters("one", "one-1")
    fleet.clusters("two", "two-1", "two-2")
    api, viewer = fleet.operator.api, fleet.viewer.api
    stages = [
        {"name": "canary", "groups": [{"name": "g", "selector": "ring=one"}]},
        {
            "name": "rest",
            "groups": [{"name": "g", "selector": "ring=two"}],
            "max_concurrency": "100%",
            "approval": True,
        },
    ]
    body = {"team": "platform", "name": "rings", "stages": stages}
    assert viewer.post(API + "update-strategies/", body, format="json").status_code == 403
    response = api.post(API + "update-strategies/", body, format="json")
    assert response.status_code == 201, response.content

    # a draft, previewed
    response = api.post(
        API + "update-runs/",
        {
            "team": "platform",
            "name": "images",
            "strategy": "rings",
            "change_kind": "node_pool",
            "change_params": {"image": "v2"},
            "gates": {"workloads": False},  # clusters without an API server
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["state"] == "draft"
    assert [(c["cluster"], c["stage"], c["state"]) for c in created["clusters"]] == [
        ("one-1", 0, "pending"),
        ("two-1", 1, "pending"),
        ("two-2", 1, "pending"),
    ]
    path = f"{API}update-runs/{created['id']}/"
    preview = viewer.get(path + "preview/")
    assert preview.status_code == 200
    assert preview.json()["stages"][1]["groups"][0]["limit"] == 2

    # started (viewers may not)
    assert viewer.post(path + "start/").status_code == 403
    response = api.post(path + "start/")
    assert response.status_code == 202, response.content
    run = UpdateRun.objects.get(pk=created["id"])
    assert response.json() == {"run": str(run.pk), "operation": str(run.operation_id)}
    assert api.post(path + "start/").status_code == 400  # once

    # waits for approval; a viewer's approval is refused
    run = drive(run, clock, until=lambda r: r.state == "waiting_approval")
    assert api.get(path).json()["message"] == "stage rest waits for approval"
    assert viewer.post(path + "approve/", {"stage": 1}, format="json").status_code == 403
    response = api.post(path + "approve/", {"stage": 5}, format="json")
    assert set(fields_of(response)) == {"stage"}
    response = api.post(path + "approve/", {"stage": 1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["stage_progress"][1]["approved_by"] == "olga"

    run = drive(run, clock)
    shown = api.get(path).json()
    assert shown["state"] == "succeeded"
    assert {c["state"] for c in shown["clusters"]} == {"succeeded"}
    assert script.max_in_flight["two"] == 2
    # a finished run cannot be paused, and says why
    response = api.post(path + "pause/")
    assert set(fields_of(response)) == {"state"}
    response = api.post(path + "skip/", {"cluster": "one-1"}, format="json")
    assert response.status_code == 400
