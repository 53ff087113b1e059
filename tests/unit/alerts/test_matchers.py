"""Silence matchers as Alertmanager reads them (expected outcomes from its documented
rules: `=`, `!=`, `=~`, `!~`; regexes anchored; an absent label is the empty string)."""

from __future__ import annotations

import pytest

from alerts.matchers import MatcherError, all_match, parse_matcher, parse_matchers

LABELS = {"alertname": "cluster-unreachable", "region": "eu-west-1", "severity": "critical"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('region="eu-west-1"', True),
        ("region=eu-west-1", True),
        ("region=eu-west", False),
        ("region!=us-east-1", True),
        ("region!=eu-west-1", False),
        ('region=~"eu-.*"', True),
        ("region=~eu", False),  # anchored: "eu" does not match "eu-west-1"
        ("region=~eu-west-1|us-east-1", True),
        ("region=~(eu|us)-(west|east)-[0-9]+", True),
        ("region!~us-.*", True),
        ("region!~eu-.*", False),
        ("zone=", True),  # an absent label matches the empty string
        ("zone!=", False),
        ("zone=~.*", True),
    ],
)
def test_one_matcher(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is expected


def test_all_matchers_must_match() -> None:
    matchers = parse_matchers(['region=~"eu-.*"', "severity=critical"])
    assert all_match(matchers, LABELS)
    assert not all_match(matchers, {**LABELS, "severity": "warning"})


def test_quoted_values_keep_inner_text_and_print_back_quoted() -> None:
    matcher = parse_matcher('  team = "a b"  ')
    assert (matcher.name, matcher.op, matcher.value) == ("team", "=", "a b")
    assert str(matcher) == 'team="a b"'


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "at least one"),
        (["region"], "not a matcher"),
        (["1region=x"], "not a matcher"),
        (["region=~("], "not a regular expression"),
        (["zone=~.*"], "match every alert"),
        (["zone="], "match every alert"),
        (["region=~(a+)+"], "take forever"),
        (["region!~(eu|us-.*)*"], "take forever"),
    ],
)
def test_bad_matchers_say_why(texts: list[str], message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        parse_matchers(texts)
