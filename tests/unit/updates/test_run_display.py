"""How the run pages word durations and a change's impact, worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from updates.display import (
    as_datetime,
    gate_labels,
    humanize_seconds,
    impact_lines,
    preview_context,
)


def test_durations() -> None:
    assert humanize_seconds(None) == "—"
    assert humanize_seconds(0) == "0 s"
    assert humanize_seconds(59) == "59 s"
    assert humanize_seconds(60) == "1 min"
    assert humanize_seconds(3599) == "59 min"
    assert humanize_seconds(3600) == "1 h"
    assert humanize_seconds(2 * 3600 + 5 * 60 + 30) == "2 h 5 min"
    assert humanize_seconds(86400) == "1 d"
    assert humanize_seconds(86400 + 2 * 3600 + 59) == "1 d 2 h"


def test_policy_impact_lists_what_enforcing_would_do() -> None:
    impact = {
        "cluster": "eu-1",
        "status": "non_compliant",
        "count": 2,
        "denied": 1,
        "remediated": 1,
        "reported": 0,
        "objects": [
            {
                "kind": "Deployment",
                "namespace": "shop",
                "name": "web",
                "rule": "no-latest",
                "effect": "deny",
                "application": "",
            },
            {
                "kind": "Namespace",
                "namespace": "",
                "name": "shop",
                "rule": "labels",
                "effect": "remediate",
                "application": "",
            },
        ],
        "note": "",
    }
    assert impact_lines(impact) == [
        "1 would be denied, 1 remediated",
        "Deployment shop/web (deny, no-latest)",
        "Namespace shop (remediate, labels)",
    ]
    clean = {**impact, "denied": 0, "remediated": 0, "objects": [], "status": "compliant"}
    assert impact_lines(clean) == ["nothing would be denied or remediated"]
    never = {"cluster": "eu-2", "status": "", "objects": [], "note": "not evaluated yet"}
    assert impact_lines(never) == ["not evaluated yet"]


def test_version_and_other_impacts() -> None:
    version = {
        "from": "v1.27 reached end of life 2024-06-28",
        "from_eol": "2024-06-28",
        "to": "v1.28 supported until 2024-10-28",
        "to_eol": "2024-10-28",
    }
    assert impact_lines(version) == [
        "v1.27 reached end of life 2024-06-28",
        "v1.28 supported until 2024-10-28",
    ]
    assert impact_lines({}) == [] and impact_lines(None) == []
    assert impact_lines({"node_count": 3, "pool": ""}) == ["node count: 3"]
    assert impact_lines("3 nodes replaced") == ["3 nodes replaced"]


def test_preview_context_rows_per_stage() -> None:
    preview = {
        "change": {
            "kind": "kubernetes_version",
            "description": "Kubernetes v1.29.4",
            "reversible": False,
            "params": {"version": "v1.29.4"},
        },
        "stages": [
            {
                "index": 0,
                "name": "canary",
                "approval": True,
                "expected_start": "2026-12-05T10:00:00+00:00",
                "expected_seconds": 3900,
                "window_wait_seconds": 300,
                "groups": [
                    {
                        "name": "canary",
                        "clusters": [
                            {
                                "name": "c-1",
                                "from": "v1.28.3",
                                "to": "v1.29.4",
                                "skip_reason": "",
                                "next_window": "2026-12-05T10:05:00+00:00",
                                "windows": ["nights"],
                            },
                        ],
                    },
                ],
            }
        ],
        "expected_seconds": 3900,
        "expected_finish": "2026-12-05T11:05:00+00:00",
        "impact": {"c-1": {"from": "v1.28 ends 2025-02-28", "to": "v1.29 ends 2025-06-28"}},
    }
    context = preview_context(preview)
    assert context["duration"] == "1 h 5 min"
    assert context["finish"] == datetime(2026, 12, 5, 11, 5, tzinfo=UTC)
    (stage,) = context["stages"]
    assert stage["approval"] and stage["duration"] == "1 h 5 min"
    assert stage["wait"] == 300 and stage["wait_text"] == "5 min"
    (row,) = stage["rows"]
    assert row["group"] == "canary" and row["from"] == "v1.28.3"
    assert row["next_window"] == datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    assert row["impact"] == ["v1.28 ends 2025-02-28", "v1.29 ends 2025-06-28"]
    assert as_datetime("") is None and as_datetime(None) is None


def test_gate_labels_list_what_is_checked_and_leave_out_what_is_off() -> None:
    assert gate_labels({}) == ["workloads", "conditions", "policies"]
    assert gate_labels(
        {
            "workloads": False,
            "conditions": True,
            "policies": True,
            "prometheus": {"url": "http://p:9090", "query": "up", "max": 0.5},
        }
    ) == ["conditions", "policies", "prometheus: up ≤ 0.5"]
    assert gate_labels({"prometheus": None, "policies": False}) == ["workloads", "conditions"]
