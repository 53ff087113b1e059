"""Strategy stages: parsing, errors by path, concurrency, the expected-duration formula."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from updates.estimate import GroupLoad, StageLoad, expected, expected_seconds
from updates.strategy import concurrency_limit, parse_stages
from updates.windows import Window

GOOD: list[dict[str, Any]] = [
    {"name": "canary", "groups": [{"name": "one", "cluster_set": "canary"}]},
    {
        "name": "eu",
        "groups": [
            {"name": "west", "selector": "region=eu-west"},
            {"name": "north", "selector": "region in (eu-north)"},
        ],
        "max_concurrency": "25%",
        "soak_seconds": 600,
        "approval": True,
    },
]


def errors_of(stages: Any) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        parse_stages(stages)
    return raised.value.message_dict["stages"]


def test_stages_are_parsed_in_order_with_defaults() -> None:
    stages = parse_stages(GOOD)
    assert [s.name for s in stages] == ["canary", "eu"]
    assert (stages[0].max_concurrency, stages[0].soak_seconds, stages[0].approval) == (1, 0, False)
    assert stages[1].groups[1].selector == "region in (eu-north)"
    assert (stages[1].max_concurrency, stages[1].soak_seconds, stages[1].approval) == (
        "25%",
        600,
        True,
    )
    assert stages[0].as_json() == {
        "name": "canary",
        "groups": [{"name": "one", "cluster_set": "canary"}],
        "max_concurrency": 1,
        "soak_seconds": 0,
        "approval": False,
    }


@pytest.mark.parametrize(
    ("stages", "expected_error"),
    [
        ([], "stages: a list of 1 to 20 stages."),
        ([GOOD[0]] * 21, "stages: a list of 1 to 20 stages."),
        ([GOOD[0], GOOD[0]], "stages[1].name: 'canary' is used twice."),
        (
            [GOOD[0], {**GOOD[1], "groups": [GOOD[1]["groups"][0]] * 2}],
            "stages[1].groups[1].name: 'west' is used twice.",
        ),
        (
            [GOOD[0], {"name": "eu", "groups": [{"name": "x", "selector": "region in (eu"}]}],
            "stages[1].groups[0].selector: ",
        ),
        (
            [{"name": "a", "groups": [{"name": "x", "selector": "a=b", "cluster_set": "s"}]}],
            "stages[0].groups[0]: give exactly one of cluster_set and selector.",
        ),
        ([{"name": "a", "groups": []}], "stages[0].groups: a list of 1 to 50 groups."),
        ([{"name": "A b", "groups": GOOD[0]["groups"]}], "stages[0].name: lowercase"),
        ([{**GOOD[0], "max_concurrency": 0}], "stages[0].max_concurrency: at least 1."),
        ([{**GOOD[0], "max_concurrency": "0%"}], "stages[0].max_concurrency: a percentage"),
        ([{**GOOD[0], "max_concurrency": "half"}], "stages[0].max_concurrency: an integer"),
        ([{**GOOD[0], "max_concurrency": True}], "stages[0].max_concurrency: an integer"),
        ([{**GOOD[0], "soak_seconds": 86401}], "stages[0].soak_seconds: an integer from 0"),
        ([{**GOOD[0], "approval": "yes"}], "stages[0].approval: true or false."),
        ([{**GOOD[0], "wait": 1}], "stages[0].wait: unknown field."),
    ],
)
def test_errors_name_the_path(stages: Any, expected_error: str) -> None:
    assert any(error.startswith(expected_error) for error in errors_of(stages)), errors_of(stages)


@pytest.mark.parametrize(
    ("value", "clusters", "limit"),
    [
        (3, 10, 3),
        ("25%", 10, 2),  # 2.5 rounded down
        ("25%", 3, 1),  # 0.75 rounds down to 0: at least 1
        ("33%", 9, 2),  # 2.97 rounded down
        ("100%", 7, 7),
        ("50%", 0, 1),
    ],
)
def test_concurrency_percentages_round_down_to_at_least_one(
    value: int | str, clusters: int, limit: int
) -> None:
    assert concurrency_limit(value, clusters) == limit


def test_expected_duration_sums_stages_batches_soak_and_window_waits() -> None:
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # a Friday
    saturday_berlin = Window(
        days=frozenset({6}), start=time(2), duration=timedelta(hours=2), timezone="Europe/Berlin"
    )
    stages = [
        # 5 clusters, 2 at once: 3 batches of 60 s, then a 300 s soak = 480 s
        StageLoad(groups=[GroupLoad(clusters=5, limit=2, estimate_seconds=60)], soak_seconds=300),
        # groups in parallel: max(1 x 100, 3 x 30) = 100 s
        StageLoad(
            groups=[
                GroupLoad(clusters=4, limit=4, estimate_seconds=100),
                GroupLoad(clusters=3, limit=1, estimate_seconds=30),
            ]
        ),
        # nothing to change: no time, no soak
        StageLoad(groups=[GroupLoad(clusters=0, limit=1, estimate_seconds=60)], soak_seconds=900),
        # starts at 12:09:40 UTC Friday; its window opens Saturday 01:00 UTC (02:00 CET):
        # a wait of 12 h 50 min 20 s = 46220 s, then 60 s
        StageLoad(
            groups=[
                GroupLoad(clusters=1, limit=1, estimate_seconds=60, windows=[[saturday_berlin]])
            ]
        ),
    ]
    timeline = expected(stages, start)
    assert [e.seconds for e in timeline] == [480, 100, 0, 46280]
    assert timeline[3].wait_seconds == 46220
    assert timeline[3].starts == datetime(2026, 3, 27, 12, 9, 40, tzinfo=UTC)
    assert expected_seconds(stages, start) == 480 + 100 + 46280
