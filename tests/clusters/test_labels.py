"""Label syntax, taints and label selectors: Python matching and SQL filtering agree."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from clusters.labels import LabelSelector, validate_labels, validate_taints
from clusters.models import Cluster
from tests.factories import make_team


@pytest.mark.parametrize(
    "labels",
    [
        {"env": "prod"},
        {"topology.kubernetes.io/region": "eu-west-1"},
        {"keelson.io/tier": ""},
        {"a" * 63: "b" * 63},
    ],
)
def test_valid_labels(labels: dict[str, str]) -> None:
    validate_labels(labels)


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ({"-env": "x"}, "starting and ending"),
        ({"env": "has space"}, "value 'has space'"),
        ({"a" * 64: "x"}, "at most 63"),
        ({"Bad_Prefix.io/x": "y"}, "prefix must be a DNS subdomain"),
        ({"/x": "y"}, "empty prefix"),
        ({"env": 3}, "must be a string"),
    ],
)
def test_invalid_labels_say_why(labels: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_labels(labels)
    assert fragment in " ".join(raised.value.messages)


def test_taints_need_a_known_effect_and_no_duplicates() -> None:
    validate_taints([{"key": "gpu", "value": "true", "effect": "NoSelect"}])
    with pytest.raises(ValidationError) as raised:
        validate_taints(
            [
                {"key": "gpu", "value": "", "effect": "NoSchedule"},
                {"key": "x", "value": "", "effect": "PreferNoSelect"},
                {"key": "x", "value": "", "effect": "PreferNoSelect"},
            ]
        )
    text = " ".join(raised.value.messages)
    assert "effect must be one of NoSelect, PreferNoSelect" in text
    assert "duplicate taint x:PreferNoSelect" in text


CASES = [
    ("env=prod", {"env": "prod"}, True),
    ("env==prod", {"env": "dev"}, False),
    ("env!=prod", {}, True),
    ("env!=prod", {"env": "prod"}, False),
    ("tier in (web, api)", {"tier": "api"}, True),
    ("tier in (web,api)", {"tier": "db"}, False),
    ("tier notin (web)", {}, True),
    ("tier notin (web)", {"tier": "web"}, False),
    ("gpu", {"gpu": ""}, True),
    ("!gpu", {"gpu": "true"}, False),
    ("env=prod,!legacy,region in (eu, us)", {"env": "prod", "region": "eu"}, True),
    ("env=prod,!legacy", {"env": "prod", "legacy": "1"}, False),
    ("", {"anything": "x"}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), CASES)
def test_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


@pytest.mark.django_db
def test_selector_in_sql_agrees_with_python() -> None:
    # given one cluster per distinct label set of the cases
    team = make_team()
    label_sets = {tuple(sorted(labels.items())) for _, labels, _ in CASES}
    for index, labels in enumerate(label_sets):
        Cluster.objects.create(name=f"c{index}", team=team, labels=dict(labels))
    for text, _, _ in CASES:
        selector = LabelSelector.parse(text)
        # when filtering in the database
        in_sql = set(Cluster.objects.filter(selector.to_q()).values_list("name", flat=True))
        # then it selects exactly what Python matching selects
        in_python = {c.name for c in Cluster.objects.all() if selector.matches(c.labels)}
        assert in_sql == in_python, text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("env=prod,,x", "character"),
        ("tier in ()", "is empty"),
        ("env=has space", "character"),
        ("-bad=x", "starting and ending"),
        ("tier in (web", "character"),
    ],
)
def test_invalid_selectors_say_where(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        LabelSelector.parse(text)
    assert fragment in raised.value.messages[0]


def test_selector_round_trips_to_text() -> None:
    text = "env=prod,tier in (a,b),!legacy,gpu"
    assert str(LabelSelector.parse(text)) == text
