"""Placement specs from untrusted JSON, with errors that name the field."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ValidationError

from applications.scheduler import (
    DEPRECATED_PRIORITIZERS,
    DIVISIONS,
    EFFECTS,
    FIELDS,
    MAX_REPLICAS,
    MAX_WEIGHT,
    PRIORITIZERS,
    PlacementSpec,
)
from clusters.labels import LabelSelector

SPREAD_BY = ("region", "provider", "zone", "environment")
PLACEMENT_KEYS = tuple(f.name for f in fields(PlacementSpec))
TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
# The longest tolerationSeconds (Kubernetes takes any int64; a year is plenty).
MAX_TOLERATION_SECONDS = 365 * 24 * 3600
OPERATORS = ("Equal", "Exists")
MAX_STATIC_WEIGHT = MAX_WEIGHT
# OCM's prioritizer names that Keelson implements with OCM's semantics, and the ones it
# does not (their names would mislead): docs/coming-from-karmada-ocm.md.
OCM_PRIORITIZERS = {
    "ResourceAllocatableCPU": "allocatable_cpu",
    "ResourceAllocatableMemory": "allocatable_memory",
}
OCM_REFUSED = {
    "Steady": "OCM's Steady scores 100 and 0; Keelson's 'steady' scores 100 and -100 "
    "(a 'steady' weight counts twice an OCM Steady weight)",
    "Balance": "OCM's Balance spreads across placements, which Keelson does not score; "
    "'resource_balance' balances CPU against memory requests",
}


def _prioritizers(data: Any) -> tuple[dict[str, int], str]:
    """The prioritizers with OCM's names mapped to Keelson's, or an error."""
    accepted = (*PRIORITIZERS, *DEPRECATED_PRIORITIZERS, *OCM_PRIORITIZERS)
    usage = f"Map {', '.join(PRIORITIZERS)} to weights from -10 to 10."
    if not isinstance(data, dict):
        return {}, usage
    refused = [f"{name!r}: {OCM_REFUSED[name]}." for name in data if name in OCM_REFUSED]
    if refused:
        return {}, " ".join(refused)
    if not all(key in accepted and _whole(w) and -10 <= w <= 10 for key, w in data.items()):
        return {}, usage
    mapped: dict[str, int] = {}
    for key, weight in data.items():
        name: str = OCM_PRIORITIZERS.get(key) or key
        if name in mapped:
            return {}, f"{name!r} is given twice (once by its OCM name)."
        mapped[name] = weight
    return mapped, ""


def _squashed(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def unknown_keys(data: dict[Any, Any], known: Collection[str]) -> str:
    """A message naming every key of `data` not in `known`, each with the closest known one
    (`numberOfClusters` -> `number_of_clusters`), or "" when every key is known. A typo
    must not be ignored: `selectr` would place on every cluster."""
    squashed = {_squashed(k): k for k in known}
    parts = []
    for key in sorted(map(str, set(data) - set(known))):
        match = squashed.get(_squashed(key)) or next(
            iter(difflib.get_close_matches(key, known, n=1, cutoff=0.6)), None
        )
        parts.append(f"{key!r} (did you mean {match!r}?)" if match else repr(key))
    if not parts:
        return ""
    return f"Unknown field(s): {', '.join(parts)}. Known: {', '.join(known)}."


def _tolerations_error(tolerations: Any) -> str:
    if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
        return "A list of {key, operator?, value?, effect?, tolerationSeconds?}."
    for index, toleration in enumerate(tolerations):
        unknown = unknown_keys(toleration, TOLERATION_KEYS)
        if unknown:
            return f"Toleration {index}: {unknown}"
        seconds = toleration.get("tolerationSeconds")
        if not all(isinstance(v, str) for k, v in toleration.items() if k != "tolerationSeconds"):
            return f"Toleration {index}: key, operator, value and effect are strings."
        if seconds is not None and (
            not _whole(seconds) or not 0 <= seconds <= MAX_TOLERATION_SECONDS
        ):
            return (
                f"Toleration {index}: tolerationSeconds is a whole number of seconds from 0 to "
                f"{MAX_TOLERATION_SECONDS:,}."
            )
        if seconds is not None and toleration.get("effect", "") not in ("", "NoExecute"):
            return (
                f"Toleration {index}: tolerationSeconds applies to NoExecute taints only "
                "(effect NoExecute, or empty for every effect)."
            )
        operator = toleration.get("operator")
        if operator is not None and operator not in OPERATORS:
            return f"Toleration {index}: operator is one of {', '.join(OPERATORS)}."
        if operator == "Exists" and toleration.get("value"):
            return f"Toleration {index}: operator Exists takes no value."
        if not toleration.get("key") and operator != "Exists":
            return f"Toleration {index}: an empty key needs operator Exists."
        effect = toleration.get("effect")
        if effect and effect not in EFFECTS:
            return f"Toleration {index}: effect is one of {', '.join(EFFECTS)} (empty: all)."
    return ""


def _whole(value: Any) -> bool:
    """An int that is not a bool (JSON true would pass isinstance(value, int))."""
    return isinstance(value, int) and not isinstance(value, bool)


def placement_spec(data: Any) -> PlacementSpec:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError({"placement": "The placement must be an object."})
    errors: dict[str, str] = {}
    unknown = unknown_keys(data, PLACEMENT_KEYS)
    if unknown:
        errors["placement"] = unknown
    selector = data.get("selector", "")
    if not isinstance(selector, str):
        errors["selector"] = "A label selector string, e.g. env=prod,tier in (web)."
        selector = ""
    try:
        LabelSelector.parse(selector)
    except ValidationError as error:
        errors["selector"] = error.messages[0]
    fields = data.get("fields") or {}
    if not isinstance(fields, dict) or not all(
        key in FIELDS and isinstance(v, list) and all(isinstance(x, str) for x in v)
        for key, v in fields.items()
    ):
        errors["fields"] = f"Map {', '.join(FIELDS)} to lists of allowed values."
    prioritizers, prioritizers_error = _prioritizers(
        data.get("prioritizers", {"least_allocated": 1})
    )
    if prioritizers_error:
        errors["prioritizers"] = prioritizers_error
    count = data.get("number_of_clusters")
    if count is not None and (not _whole(count) or count < 1):
        errors["number_of_clusters"] = "A positive number, or omit it for every feasible cluster."
    for key in ("max_per", "min_distinct"):
        value = data.get(key) or {}
        if not isinstance(value, dict) or not all(
            k in SPREAD_BY and _whole(v) and v >= 1 for k, v in value.items()
        ):
            errors[key] = f"Map {', '.join(SPREAD_BY)} to a count of at least 1."
    replicas = data.get("replicas", 1)
    if not _whole(replicas) or not 0 <= replicas <= MAX_REPLICAS:
        errors["replicas"] = f"A number of replicas from 0 to {MAX_REPLICAS:,}."
    division = data.get("division", "duplicated")
    if division not in DIVISIONS:
        errors["division"] = f"One of {', '.join(DIVISIONS)}."
    tolerations = data.get("tolerations") or []
    tolerations_error = _tolerations_error(tolerations)
    if tolerations_error:
        errors["tolerations"] = tolerations_error
    weights = data.get("static_weights") or {}
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and _whole(v) and 0 <= v <= MAX_STATIC_WEIGHT for k, v in weights.items()
    ):
        errors["static_weights"] = (
            f"Map cluster names to weights from 0 to {MAX_STATIC_WEIGHT:,} (all 0: equal)."
        )
    toleration = data.get("unreachable_toleration_seconds", 300)
    if not _whole(toleration) or toleration < 0:
        errors["unreachable_toleration_seconds"] = "Seconds, 0 or more."
    if errors:
        raise ValidationError(errors)
    return PlacementSpec(
        selector=selector,
        fields=fields,
        tolerations=tolerations,
        prioritizers=prioritizers,
        number_of_clusters=count,
        max_per=data.get("max_per") or {},
        min_distinct=data.get("min_distinct") or {},
        replicas=replicas,
        division=division,
        static_weights=weights,
        unreachable_toleration_seconds=toleration,
    )


STRATEGIES = ("all_at_once", "rolling", "canary")


@dataclass(frozen=True)
class RolloutSpec:
    """How a version or a new decision reaches the clusters. Every step must be available
    (every workload's replicas updated and available) within `health_timeout_seconds`; a
    canary must then stay available for `canary_soak_seconds`. A failed step stops the
    rollout and, with `rollback`, returns the clusters already changed to what they ran."""

    strategy: str = "all_at_once"
    max_concurrency: int = 1
    canary_clusters: int = 1
    canary_soak_seconds: int = 30
    health_timeout_seconds: int = 300
    rollback: bool = True

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rollout_spec(data: Any) -> RolloutSpec:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError({"rollout": "The rollout strategy must be an object."})
    errors: dict[str, str] = {}
    unknown = unknown_keys(data, tuple(RolloutSpec.__dataclass_fields__))
    if unknown:
        errors["rollout"] = unknown
    strategy = data.get("strategy", "all_at_once")
    if strategy not in STRATEGIES:
        errors["strategy"] = f"One of {', '.join(STRATEGIES)}."
    limits = {
        "max_concurrency": (1, 1000),
        "canary_clusters": (1, 1000),
        "canary_soak_seconds": (0, 86400),
        "health_timeout_seconds": (1, 86400),
    }
    values: dict[str, int] = {}
    for key, (low, high) in limits.items():
        value = data.get(key, RolloutSpec.__dataclass_fields__[key].default)
        if not _whole(value) or not low <= value <= high:
            errors[key] = f"A whole number from {low} to {high}."
        else:
            values[key] = value
    rollback = data.get("rollback", True)
    if not isinstance(rollback, bool):
        errors["rollback"] = "true or false."
    if errors:
        raise ValidationError(errors)
    return RolloutSpec(strategy=strategy, rollback=rollback, **values)
