"""Each rule kind's parameters: their defaults and their checks (a clear message per
field, for a 400), its default grouping, and the rules every team starts with. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alerts.choices import RuleKind, Severity

MAX_MINUTES = 7 * 24 * 60
MAX_HOURS = 30 * 24


class ParamsError(ValueError):
    """Bad parameters; `errors` maps each parameter to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _int(value: Any, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"a whole number from {low} to {high}"
    return None if low <= value <= high else f"a whole number from {low} to {high}"


def _number(value: Any, low: float, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"a number from {low:g} to {high:g}"
    return None if low <= value <= high else f"a number from {low:g} to {high:g}"


def _name(value: Any) -> str | None:
    ok = isinstance(value, str) and 0 < len(value) <= 200
    return None if ok else "a name (up to 200 characters)"


def _choice(*choices: str) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(choices)

    return check


def _names(value: Any) -> str | None:
    ok = isinstance(value, list) and len(value) <= 50
    ok = ok and all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
    return None if ok else "a list of up to 50 operation kinds (e.g. rollout)"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


@dataclass(frozen=True)
class KindSpec:
    defaults: dict[str, Any]
    checks: dict[str, Any]
    group_by: tuple[str, ...] = ()
    optional: tuple[str, ...] = field(default=())  # keys that may be absent (no default)


KINDS: dict[str, KindSpec] = {
    RuleKind.CLUSTER_STATUS: KindSpec(
        {"status": "unreachable", "for_minutes": 0},
        {
            "status": _choice("unreachable", "degraded"),
            "for_minutes": lambda v: _int(v, 0, MAX_MINUTES),
        },
        group_by=("region",),
    ),
    RuleKind.AGENT_SILENT: KindSpec(
        {"for_minutes": 15},
        {"for_minutes": lambda v: _int(v, 1, MAX_MINUTES)},
        group_by=("region",),
    ),
    RuleKind.COMPLIANCE: KindSpec(
        {"target": "fleet", "window_hours": 24},
        {
            "target": _choice("fleet", "policy", "standard", "cluster_set"),
            "name": _name,
            "below": lambda v: _number(v, 0, 100),
            "drop_points": lambda v: _number(v, 0.1, 100),
            "window_hours": lambda v: _int(v, 1, MAX_HOURS),
        },
        optional=("name", "below", "drop_points"),
    ),
    RuleKind.CRITICAL_VIOLATION: KindSpec(
        {"min_severity": "critical"},
        {"min_severity": _choice("critical", "high")},
        group_by=("policy",),
    ),
    RuleKind.BUDGET_FORECAST: KindSpec(
        {"budget": ""}, {"budget": lambda v: None if v == "" else _name(v)}
    ),
    RuleKind.OPERATION_FAILED: KindSpec(
        {"kinds": [], "window_hours": 24, "rolled_back": True},
        {
            "kinds": _names,
            "window_hours": lambda v: _int(v, 1, MAX_HOURS),
            "rolled_back": _bool,
        },
    ),
    RuleKind.VERSION_EOL: KindSpec({"days_before": 0}, {"days_before": lambda v: _int(v, 0, 365)}),
    RuleKind.AGENT_TOKEN: KindSpec(
        {"days_before": 7}, {"days_before": lambda v: _int(v, 0, 365)}, group_by=("region",)
    ),
}


def clean_params(kind: str, params: Any) -> dict[str, Any]:
    """The parameters with defaults filled in, or ParamsError naming each bad one."""
    spec = KINDS.get(kind)
    if spec is None:
        raise ParamsError({"kind": "one of " + ", ".join(RuleKind.values)})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ParamsError({"params": "an object of the kind's parameters"})
    errors = {
        key: f"not a parameter of {kind} (use {', '.join(spec.checks)})"
        for key in params
        if key not in spec.checks
    }
    cleaned = {**spec.defaults, **{k: v for k, v in params.items() if k in spec.checks}}
    for key, value in cleaned.items():
        if (problem := spec.checks[key](value)) is not None:
            errors[key] = f"must be {problem}"
    if kind == RuleKind.COMPLIANCE and not errors:
        if "below" not in cleaned and "drop_points" not in cleaned:
            errors["below"] = "give below (a percentage) and/or drop_points"
        if cleaned["target"] != "fleet" and "name" not in cleaned:
            errors["name"] = f"name the {cleaned['target'].replace('_', ' ')}"
    if errors:
        raise ParamsError(errors)
    return cleaned


def default_group_by(kind: str) -> list[str]:
    return list(KINDS[kind].group_by) if kind in KINDS else []


# What every team starts with (name, kind, params, severity, description).
DEFAULT_RULES: tuple[tuple[str, str, dict[str, Any], str, str], ...] = (
    (
        "cluster-unreachable",
        RuleKind.CLUSTER_STATUS,
        {"status": "unreachable", "for_minutes": 0},
        Severity.CRITICAL,
        "A cluster became Unreachable (its probes failed three times in a row).",
    ),
    (
        "cluster-degraded",
        RuleKind.CLUSTER_STATUS,
        {"status": "degraded", "for_minutes": 15},
        Severity.WARNING,
        "A cluster has been Degraded for 15 minutes.",
    ),
    (
        "agent-silent",
        RuleKind.AGENT_SILENT,
        {"for_minutes": 15},
        Severity.WARNING,
        "A pull-mode cluster's agent sent nothing for 15 minutes.",
    ),
    (
        "operation-failed",
        RuleKind.OPERATION_FAILED,
        {"kinds": [], "window_hours": 24, "rolled_back": True},
        Severity.WARNING,
        "An operation or rollout failed or rolled back in the last 24 hours.",
    ),
    (
        "critical-violation",
        RuleKind.CRITICAL_VIOLATION,
        {"min_severity": "critical"},
        Severity.CRITICAL,
        "A critical policy is violated on a cluster.",
    ),
    (
        "budget-forecast",
        RuleKind.BUDGET_FORECAST,
        {"budget": ""},
        Severity.WARNING,
        "A budget's forecast for the month is above its amount.",
    ),
    (
        "version-eol",
        RuleKind.VERSION_EOL,
        {"days_before": 0},
        Severity.WARNING,
        "A cluster runs a Kubernetes version past its end of life.",
    ),
    (
        "agent-token-expiring",
        RuleKind.AGENT_TOKEN,
        {"days_before": 7},
        Severity.WARNING,
        "A pull-mode agent's token expires within 7 days: it did not rotate it at half-life.",
    ),
)
