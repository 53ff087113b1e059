"""A strategy's stages: parsing, validation and the arithmetic on them (pure, no database).

A strategy is 1-20 ordered stages; each stage has uniquely named groups, each group
choosing clusters by cluster set name or label selector. `max_concurrency` is per group:
an integer ≥ 1, or "N%" of the group's clusters rounded down and at least 1 (Azure
Kubernetes Fleet Manager's maxConcurrency). Errors name the path of the bad value:
`stages[1].groups[0].selector: ...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from clusters.labels import LabelSelector

MAX_STAGES = 20
MAX_GROUPS = 50
MAX_SOAK_SECONDS = 86400
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PERCENT = re.compile(r"^(\d{1,3})%$")
_STAGE_KEYS = {"name", "groups", "max_concurrency", "soak_seconds", "approval"}
_GROUP_KEYS = {"name", "cluster_set", "selector"}


@dataclass(frozen=True)
class Group:
    name: str
    cluster_set: str = ""
    selector: str = ""

    def as_json(self) -> dict[str, str]:
        if self.cluster_set:
            return {"name": self.name, "cluster_set": self.cluster_set}
        return {"name": self.name, "selector": self.selector}


@dataclass(frozen=True)
class Stage:
    name: str
    groups: tuple[Group, ...]
    max_concurrency: int | str = 1
    soak_seconds: int = 0
    approval: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "groups": [group.as_json() for group in self.groups],
            "max_concurrency": self.max_concurrency,
            "soak_seconds": self.soak_seconds,
            "approval": self.approval,
        }


class _Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}")


def concurrency_limit(max_concurrency: int | str, clusters: int) -> int:
    """How many of a group's `clusters` may change at once: an integer as it is; "N%" is
    N percent of the clusters rounded down, at least 1 (Azure Fleet's maxConcurrency)."""
    if isinstance(max_concurrency, int):
        return max_concurrency
    found = _PERCENT.match(max_concurrency)
    if found is None:
        raise ValueError(f"not a concurrency: {max_concurrency!r}")
    return max(1, clusters * int(found[1]) // 100)


def _concurrency(value: Any, path: str, errors: _Errors) -> int | str:
    if isinstance(value, bool):
        errors.add(path, 'an integer of at least 1, or a percentage such as "25%".')
        return 1
    if isinstance(value, int):
        if value < 1:
            errors.add(path, "at least 1.")
        return value
    if isinstance(value, str) and (found := _PERCENT.match(value.strip())):
        if not 1 <= int(found[1]) <= 100:
            errors.add(path, "a percentage from 1% to 100%.")
        return f"{int(found[1])}%"
    errors.add(path, 'an integer of at least 1, or a percentage such as "25%".')
    return 1


def _name(value: Any, path: str, errors: _Errors) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        errors.add(path, "lowercase letters, digits and '-' (at most 63), e.g. \"canary\".")
        return str(value)
    return value


def _group(raw: Any, path: str, errors: _Errors) -> Group | None:
    if not isinstance(raw, dict):
        errors.add(path, 'an object {"name", "cluster_set"} or {"name", "selector"}.')
        return None
    for key in sorted(set(raw) - _GROUP_KEYS):
        errors.add(f"{path}.{key}", "unknown field (use name, cluster_set or selector).")
    name = _name(raw.get("name"), f"{path}.name", errors)
    cluster_set, selector = raw.get("cluster_set"), raw.get("selector")
    if (cluster_set is None) == (selector is None):
        errors.add(path, "give exactly one of cluster_set and selector.")
        return None
    if cluster_set is not None:
        if not isinstance(cluster_set, str) or not _NAME.match(cluster_set):
            errors.add(f"{path}.cluster_set", "the name of one of the team's cluster sets.")
            return None
        return Group(name=name, cluster_set=cluster_set)
    if not isinstance(selector, str) or not selector.strip():
        errors.add(f"{path}.selector", 'a label selector such as "region=eu,tier!=dev".')
        return None
    try:
        LabelSelector.parse(selector)
    except ValidationError as error:
        errors.add(f"{path}.selector", " ".join(error.messages))
        return None
    return Group(name=name, selector=selector.strip())


def _integer(raw: dict[str, Any], key: str, path: str, low: int, high: int, errors: _Errors) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.add(f"{path}.{key}", f"an integer from {low} to {high}.")
        return low
    return value


def _stage(raw: Any, path: str, errors: _Errors) -> Stage | None:
    if not isinstance(raw, dict):
        errors.add(path, 'an object with "name" and "groups".')
        return None
    for key in sorted(set(raw) - _STAGE_KEYS):
        errors.add(f"{path}.{key}", "unknown field.")
    name = _name(raw.get("name"), f"{path}.name", errors)
    raw_groups = raw.get("groups")
    groups: list[Group] = []
    if not isinstance(raw_groups, list) or not 1 <= len(raw_groups) <= MAX_GROUPS:
        errors.add(f"{path}.groups", f"a list of 1 to {MAX_GROUPS} groups.")
    else:
        seen: set[str] = set()
        for index, raw_group in enumerate(raw_groups):
            group = _group(raw_group, f"{path}.groups[{index}]", errors)
            if group is None:
                continue
            if group.name in seen:
                errors.add(f"{path}.groups[{index}].name", f"{group.name!r} is used twice.")
            seen.add(group.name)
            groups.append(group)
    concurrency = _concurrency(raw.get("max_concurrency", 1), f"{path}.max_concurrency", errors)
    soak = _integer(raw, "soak_seconds", path, 0, MAX_SOAK_SECONDS, errors)
    approval = raw.get("approval", False)
    if not isinstance(approval, bool):
        errors.add(f"{path}.approval", "true or false.")
        approval = False
    return Stage(
        name=name,
        groups=tuple(groups),
        max_concurrency=concurrency,
        soak_seconds=soak,
        approval=approval,
    )


def parse_stages(raw: Any) -> list[Stage]:
    """Validate a strategy's stages; ValidationError({"stages": [path: problem, ...]})."""
    errors = _Errors()
    stages: list[Stage] = []
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STAGES:
        errors.add("stages", f"a list of 1 to {MAX_STAGES} stages.")
    else:
        seen: set[str] = set()
        for index, raw_stage in enumerate(raw):
            stage = _stage(raw_stage, f"stages[{index}]", errors)
            if stage is None:
                continue
            if stage.name in seen:
                errors.add(f"stages[{index}].name", f"{stage.name!r} is used twice.")
            seen.add(stage.name)
            stages.append(stage)
    if errors.messages:
        raise ValidationError({"stages": errors.messages})
    return stages
