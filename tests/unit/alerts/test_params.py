"""Rule parameters per kind: defaults filled in, each mistake named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.evaluation import compliance_check
from alerts.params import DEFAULT_RULES, ParamsError, clean_params, default_group_by

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_defaults_are_filled_in() -> None:
    assert clean_params("cluster_status", {}) == {"status": "unreachable", "for_minutes": 0}
    assert clean_params("cluster_status", {"status": "degraded", "for_minutes": 15}) == {
        "status": "degraded",
        "for_minutes": 15,
    }
    assert clean_params("version_eol", None) == {"days_before": 0}


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("cluster_status", {"status": "ready"}, "status"),
        ("cluster_status", {"for_minutes": -1}, "for_minutes"),
        ("cluster_status", {"for_minutes": "5"}, "for_minutes"),
        ("cluster_status", {"for_minutes": True}, "for_minutes"),
        ("cluster_status", {"minutes": 5}, "minutes"),
        ("agent_silent", {"for_minutes": 0}, "for_minutes"),
        ("compliance", {}, "below"),
        ("compliance", {"target": "policy", "below": 90}, "name"),
        ("compliance", {"below": 101}, "below"),
        ("operation_failed", {"kinds": "rollout"}, "kinds"),
        ("budget_forecast", {"budget": 5}, "budget"),
        ("nonsense", {}, "kind"),
    ],
)
def test_bad_params_name_the_field(kind: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamsError) as raised:
        clean_params(kind, params)
    assert field in raised.value.errors


def test_every_default_rule_is_valid() -> None:
    names = [name for name, *_ in DEFAULT_RULES]
    assert len(names) == len(set(names))
    for _, kind, params, _, _ in DEFAULT_RULES:
        clean_params(kind, dict(params))
    assert default_group_by("cluster_status") == ["region"]


def test_compliance_below_threshold() -> None:
    reason, kept = compliance_check([], 72.5, now=NOW, params={"below": 80, "window_hours": 24})
    assert reason == "compliance is 72.5%, below 80%"
    assert kept == [[NOW.isoformat(), 72.5]]


def test_compliance_drop_compares_with_the_best_reading_in_the_window() -> None:
    readings = [
        [(NOW - timedelta(hours=30)).isoformat(), 99.0],  # out of the 24 h window: dropped
        [(NOW - timedelta(hours=5)).isoformat(), 95.0],
        [(NOW - timedelta(hours=1)).isoformat(), 90.0],
    ]
    params = {"drop_points": 10, "window_hours": 24}
    reason, kept = compliance_check(readings, 85.0, now=NOW, params=params)
    assert reason == "compliance dropped from 95% to 85% (by 10 points)"
    assert [r[1] for r in kept] == [95.0, 90.0, 85.0]
    reason, _ = compliance_check(readings, 86.0, now=NOW, params=params)
    assert reason is None  # 9 points: not yet


def test_no_compliance_reading_fires_nothing() -> None:
    assert compliance_check([], None, now=NOW, params={"below": 80})[0] is None
