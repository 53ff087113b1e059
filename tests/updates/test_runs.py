"""Creating a draft run (planning, scope, errors by field) and its preview (from/to, skip
reasons, end of life, next window, the expected duration worked out by hand, impact)."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from tests.factories import make_team
from tests.updates.conftest import Clock, Fleet
from tests.updates.scripted import Script
from updates.models import MaintenanceWindow, UpdateStrategy
from updates.preview import run_preview
from updates.services import maintenance_window_save, update_run_create, update_strategy_save

STAGES: list[dict[str, Any]] = [
    {"name": "one", "groups": [{"name": "g", "selector": "ring=one"}], "soak_seconds": 300},
    {"name": "two", "groups": [{"name": "g", "cluster_set": "two-set"}]},
]


def make_fleet(fleet: Fleet) -> None:
    fleet.clusters("one", "canary-1")
    a1 = fleet.clusters("two", "a-1", image="v2")[0]  # already on the target
    a2 = fleet.clusters("two", "a-2")[0]
    a2.kubernetes_version = "v1.99.0"  # no end of life known
    a2.save()
    weekend = fleet.cluster_set("weekend", [a2])
    fleet.cluster_set("two-set", [a1, a2])
    maintenance_window_save(
        actor=None,
        window=MaintenanceWindow(
            team=fleet.team,
            name="weekend",
            cluster_set=weekend,
            days=[6],
            start_time=time(2),
            duration_minutes=120,
            timezone="Europe/Berlin",
        ),
    )


def test_a_draft_plans_every_cluster_and_the_preview_shows_it(
    fleet: Fleet, clock: Clock, script: Script
) -> None:
    make_fleet(fleet)
    run = fleet.run(STAGES)
    assert run.state == "draft"
    assert run.stages[1]["groups"][0]["planned"] == 1  # a-1 is skipped
    assert script.calls == []  # nothing changed anywhere

    preview = run_preview(run, now=clock.now)  # Friday 27 March 2026, 12:00 UTC

    one, two = preview["stages"]
    canary = one["groups"][0]["clusters"][0]
    assert (canary["name"], canary["from"], canary["to"], canary["skip_reason"]) == (
        "canary-1",
        "v1",
        "v2",
        "",
    )
    assert (canary["end_of_life"], canary["past_end_of_life"]) == ("2022-02-28", True)
    assert canary["next_window"] is None  # in no windowed set: any time
    a1, a2 = two["groups"][0]["clusters"]
    assert (a1["state"], a1["skip_reason"]) == ("skipped", "Already on the image.")
    assert (a2["end_of_life"], a2["past_end_of_life"]) == (None, False)
    assert a2["next_window"] == "2026-03-28T01:00:00+00:00"
    assert a2["next_window_text"] == "Sat 02:00 Europe/Berlin"
    # stage one: 1 x 120 s + 300 s soak = 420 s; stage two starts at 12:07 UTC, waits
    # until Saturday 01:00 UTC (46380 s), then 120 s
    assert [s["expected_seconds"] for s in preview["stages"]] == [420, 46500]
    assert two["window_wait_seconds"] == 46380
    assert preview["expected_seconds"] == 46920
    assert preview["expected_finish"] == "2026-03-28T01:02:00+00:00"
    assert (preview["clusters"], preview["to_change"], preview["skipped"]) == (3, 2, 1)
    assert preview["change"] == {
        "kind": "node_pool",
        "description": "image v2",
        "reversible": True,
        "params": {"image": "v2"},
        "problems": [],
    }
    assert preview["impact"] == {"canary-1": {"nodes": 0}, "a-1": {"nodes": 0}, "a-2": {"nodes": 0}}


def test_scope_keeps_only_clusters_past_end_of_life(fleet: Fleet, script: Script) -> None:
    make_fleet(fleet)
    run = fleet.run(STAGES, scope={"eol": "past"})
    assert sorted(run.run_clusters.values_list("cluster_name", flat=True)) == ["a-1", "canary-1"]


def test_errors_name_the_field_and_create_nothing(fleet: Fleet, script: Script) -> None:
    make_fleet(fleet)
    strategy = fleet.strategy(STAGES)
    other = update_strategy_save(
        actor=None,
        strategy=UpdateStrategy(
            team=make_team(name="others"),
            name="theirs",
            stages=[{"name": "x", "groups": [{"name": "g", "selector": "a=b"}]}],
        ),
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"change_kind": "teleport"}, "change_kind"),
        ({"change_params": {}}, "change_params"),
        ({"scope": {"eol": "soon"}}, "scope"),
        ({"scope": {"colour": "red"}}, "scope"),
        ({"strategy": other}, "strategy"),
        ({"name": ""}, "name"),
    ]
    for change, field in cases:
        arguments: dict[str, Any] = {
            "actor": None,
            "team": fleet.team,
            "name": "r",
            "strategy": strategy,
            "change_kind": "node_pool",
            "change_params": {"image": "v2"},
            **change,
        }
        with pytest.raises(ValidationError) as raised:
            update_run_create(**arguments)
        assert field in raised.value.message_dict, (change, raised.value.message_dict)
    assert fleet.team.pk and not strategy.runs.exists()
    # the params' own field is named inside change_params
    with pytest.raises(ValidationError) as raised:
        update_run_create(
            actor=None,
            team=fleet.team,
            name="r",
            strategy=strategy,
            change_kind="node_pool",
            change_params={},
        )
    assert raised.value.message_dict == {"change_params": ["image: The image to roll out."]}
    # a run that selects nothing is refused
    with pytest.raises(ValidationError) as raised:
        update_run_create(
            actor=None,
            team=fleet.team,
            name="r",
            strategy=strategy,
            change_kind="node_pool",
            change_params={"image": "v2"},
            scope={"selector": "ring=none"},
        )
    assert raised.value.message_dict == {
        "strategy": [
            "The strategy's groups select no cluster of team platform within the run's scope."
        ]
    }


def test_a_strategy_names_only_the_teams_cluster_sets(fleet: Fleet) -> None:
    with pytest.raises(ValidationError) as raised:
        fleet.strategy([{"name": "a", "groups": [{"name": "g", "cluster_set": "nope"}]}])
    assert raised.value.message_dict == {
        "stages": ["stages[0].groups[0].cluster_set: the team has no cluster set 'nope'."]
    }
