"""How the run pages word numbers and a change's impact (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

# Objects listed per cluster in the preview (the policy impact carries the first 10).
OBJECTS_SHOWN = 10


def humanize_seconds(seconds: int | float | None) -> str:
    """ "1 d 2 h", "2 h 5 min", "3 min", "40 s"; "—" when unknown."""
    if seconds is None:
        return "—"
    total = int(seconds)
    if total < 60:
        return f"{max(total, 0)} s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _object(obj: dict[str, Any]) -> str:
    where = f"{obj['namespace']}/" if obj.get("namespace") else ""
    line = f"{obj.get('kind', '')} {where}{obj.get('name', '')}".strip()
    how = ", ".join(str(obj[k]) for k in ("effect", "rule") if obj.get(k))
    return f"{line} ({how})" if how else line


def _policy_lines(impact: dict[str, Any]) -> list[str]:
    """A policy's enforce impact (policies.services.impact.ClusterImpact.as_json)."""
    denied, remediated = int(impact.get("denied") or 0), int(impact.get("remediated") or 0)
    lines = []
    if denied or remediated:
        lines.append(f"{denied} would be denied, {remediated} remediated")
    elif impact.get("status"):
        lines.append("nothing would be denied or remediated")
    lines += [
        _object(o) if isinstance(o, dict) else str(o)
        for o in impact.get("objects", [])[:OBJECTS_SHOWN]
    ]
    if impact.get("note"):
        lines.append(str(impact["note"]))
    return lines


def impact_lines(impact: Any) -> list[str]:
    """The change kind's impact on one cluster (`Change.impact`'s value for it) as lines:
    a policy's objects that enforcing would deny or remediate, a version's end-of-life
    sentences ("from"/"to"), or any other mapping as "key: value"."""
    if impact in (None, "", {}, []):
        return []
    if isinstance(impact, str):
        return [impact]
    if isinstance(impact, list):
        return [_object(i) if isinstance(i, dict) else str(i) for i in impact]
    if not isinstance(impact, dict):
        return [str(impact)]
    if "objects" in impact or "denied" in impact:
        return _policy_lines(impact)
    if "from" in impact or "to" in impact:
        return [str(impact[side]) for side in ("from", "to") if impact.get(side)]
    return [
        f"{key.replace('_', ' ')}: {value}"
        for key, value in impact.items()
        if value not in (None, "", [], {})
    ]


def as_datetime(value: Any) -> datetime | None:
    """A datetime from what a preview holds (a datetime or an ISO 8601 string)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_datetime(value)
    return None


def _preview_stage(stage: dict[str, Any], impact: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for group in stage.get("groups", []):
        for cluster in group.get("clusters", []):
            rows.append(
                {
                    **cluster,
                    "group": group.get("name", ""),
                    "next_window": as_datetime(cluster.get("next_window")),
                    "impact": impact_lines(impact.get(cluster.get("name", ""))),
                }
            )
    return {
        "name": stage.get("name", ""),
        "approval": bool(stage.get("approval")),
        "starts": as_datetime(stage.get("expected_start")),
        "duration": humanize_seconds(stage.get("expected_seconds")),
        "wait": int(stage.get("window_wait_seconds") or 0),
        "wait_text": humanize_seconds(stage.get("window_wait_seconds") or 0),
        "rows": rows,
    }


def preview_context(preview: dict[str, Any]) -> dict[str, Any]:
    """What the preview fragment shows of `update_run_preview`'s answer: per stage when it
    should start and how long it should take, one row per cluster (group, from → to or
    why skipped, end of life, next window opening, the change's impact there)."""
    impact = preview.get("impact") or {}
    return {
        "preview": preview,
        "change": preview.get("change") or {},
        "duration": humanize_seconds(preview.get("expected_seconds")),
        "finish": as_datetime(preview.get("expected_finish")),
        "stages": [_preview_stage(stage, impact) for stage in preview.get("stages", [])],
    }


def gate_labels(gates: dict[str, Any]) -> list[str]:
    """The gates a run checks besides Ready, as the run page lists them: "workloads",
    "conditions", "policies", "prometheus: QUERY ≤ MAX" (the ones turned off left out)."""
    labels = [name for name in ("workloads", "conditions", "policies") if gates.get(name, True)]
    prometheus = gates.get("prometheus")
    if isinstance(prometheus, dict) and prometheus.get("query"):
        labels.append(f"prometheus: {prometheus['query']} ≤ {prometheus.get('max')}")
    return labels
