"""Kubernetes label syntax: validation of labels and taints, and label selectors.

Selectors use the string form of `kubectl -l`: ``env=prod,tier in (web,api),!legacy``.
They are matched in Python (`LabelSelector.matches`) and in the database
(`LabelSelector.to_q`, over a JSON `labels` column), with the same semantics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q

from clusters.choices import TaintEffect

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# Kubernetes' own limits (prefix 253, name 63, value 63) bound a label's size; an error
# quotes at most this much of what it refuses, so a huge key is not echoed back.
_QUOTE = 80


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "...")


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label key, or None."""
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    if len(key) > 253 + 1 + 63:
        return f"label key {_quoted(key)} is longer than 317 characters"
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"label key {_quoted(key)} has an empty prefix"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            f"label key {_quoted(key)}: the prefix must be a DNS subdomain (at most 253 characters)"
        )
    if not _NAME.match(name):
        return (
            f"label key {_quoted(key)}: the name must be at most 63 characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def label_value_error(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"label {_quoted(str(key))}: the value must be a string"
    if value and not _NAME.match(value):
        return (
            f"label {_quoted(str(key))}: value {_quoted(value)} must be empty or at most 63 "
            "characters of letters, digits, '-', '_' or '.', starting and ending with a "
            "letter or digit"
        )
    return None


def validate_labels(labels: Any) -> None:
    """Raise ValidationError listing every invalid key or value."""
    if not isinstance(labels, dict):
        raise ValidationError("Labels must be an object of string keys to string values.")
    if len(labels) > settings.KEELSON_MAX_LABELS:
        raise ValidationError(
            f"At most {settings.KEELSON_MAX_LABELS} labels (KEELSON_MAX_LABELS); "
            f"{len(labels)} given."
        )
    errors = [
        error
        for key, value in labels.items()
        for error in (label_key_error(key), label_value_error(key, value))
        if error
    ]
    if errors:
        raise ValidationError(errors)


def validate_taints(taints: Any) -> None:
    """Taints are ``{"key", "value", "effect"}`` with effect NoSelect, PreferNoSelect,
    NoSelectIfNew (OCM) or NoExecute (Karmada: applications not tolerating it are evicted).
    A NoExecute taint carries ``timeAdded`` (RFC 3339), which `stamp_taints` sets."""
    if not isinstance(taints, list):
        raise ValidationError("Taints must be a list of {key, value, effect} objects.")
    if len(taints) > settings.KEELSON_MAX_LABELS:
        raise ValidationError(
            f"At most {settings.KEELSON_MAX_LABELS} taints (KEELSON_MAX_LABELS); "
            f"{len(taints)} given."
        )
    errors: list[str] = []
    seen: set[tuple[str, str]] = set()
    for position, taint in enumerate(taints, start=1):
        if not isinstance(taint, dict) or set(taint) - {"key", "value", "effect", "timeAdded"}:
            errors.append(f"taint #{position}: use an object with key, value and effect")
            continue
        key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect")
        if error := label_key_error(key):
            errors.append(f"taint #{position}: {error}")
        if error := label_value_error(str(key), value):
            errors.append(f"taint #{position}: {error}")
        if effect not in TaintEffect.values:
            errors.append(
                f"taint #{position}: effect must be one of {', '.join(TaintEffect.values)}"
            )
        if "timeAdded" in taint and (
            effect != TaintEffect.NO_EXECUTE or _time_error(taint["timeAdded"])
        ):
            errors.append(
                f"taint #{position}: timeAdded is an RFC 3339 time with its offset, on a "
                "NoExecute taint only"
            )
        if (key, effect) in seen:
            errors.append(f"taint #{position}: duplicate taint {key}:{effect}")
        seen.add((str(key), str(effect)))
    if errors:
        raise ValidationError(errors)


def _time_error(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return True
    return parsed.tzinfo is None


def stamp_taints(taints: Any, before: list[dict[str, Any]], now: datetime) -> Any:
    """`taints` with the time each NoExecute taint was added (Karmada's timeAdded, from
    which tolerationSeconds count): kept from `before` for a taint already there (same
    key, value and effect), `now` for a new one; one given explicitly is kept."""
    if not isinstance(taints, list):
        return taints  # refused by validate_taints
    added = {
        (t.get("key"), t.get("value", ""), t.get("effect")): t["timeAdded"]
        for t in before
        if isinstance(t, dict) and t.get("timeAdded")
    }
    stamped = []
    for taint in taints:
        if (
            isinstance(taint, dict)
            and taint.get("effect") == TaintEffect.NO_EXECUTE
            and not taint.get("timeAdded")
        ):
            identity = (taint.get("key"), taint.get("value", ""), taint.get("effect"))
            taint = {**taint, "timeAdded": added.get(identity) or now.isoformat()}
        stamped.append(taint)
    return stamped


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=":
                return present and value == self.values[0]
            case "!=":
                return not present or value != self.values[0]
            case "in":
                return present and value in self.values
            case "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case _:
                return not present

    def to_q(self, field: str) -> Q:
        def has(value: str) -> Q:
            return Q(**{f"{field}__contains": {self.key: value}})

        exists = Q(**{f"{field}__has_key": self.key})
        match self.operator:
            case "=":
                return has(self.values[0])
            case "!=":
                return ~has(self.values[0])
            case "in" | "notin":
                any_of = Q()
                for value in self.values:
                    any_of |= has(value)
                return any_of if self.operator == "in" else ~any_of
            case "exists":
                return exists
            case _:
                return ~exists


_TOKEN = re.compile(
    r"\s*(?:(?P<not>!)\s*(?P<nkey>[^\s,=!()]+)"
    r"|(?P<key>[^\s,=!()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?)\s*(?:,|$)"
)


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the string form; raise ValidationError with the position of the problem."""
        requirements: list[Requirement] = []
        position, text = 0, text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ValidationError(
                    f"Invalid label selector at character {position + 1}: "
                    f"{text[position : position + 20]!r} (use key=value, key!=value, "
                    "key in (a,b), key notin (a,b), key or !key, separated by commas)"
                )
            requirements.append(_requirement(match))
            position = match.end()
        for requirement in requirements:
            if error := label_key_error(requirement.key):
                raise ValidationError(f"Invalid label selector: {error}")
            for value in requirement.values:
                if error := label_value_error(requirement.key, value):
                    raise ValidationError(f"Invalid label selector: {error}")
        return cls(tuple(requirements))

    @classmethod
    def from_match_labels(cls, labels: dict[str, str]) -> LabelSelector:
        return cls(tuple(Requirement(key, "=", (value,)) for key, value in labels.items()))

    def matches(self, labels: dict[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def to_q(self, field: str = "labels") -> Q:
        combined = Q()
        for requirement in self.requirements:
            combined &= requirement.to_q(field)
        return combined

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator in ("=", "!="):
                parts.append(f"{r.key}{r.operator}{r.values[0]}")
            elif r.operator in ("in", "notin"):
                parts.append(f"{r.key} {r.operator} ({','.join(r.values)})")
            else:
                parts.append(r.key if r.operator == "exists" else f"!{r.key}")
        return ",".join(parts)


def _requirement(match: re.Match[str]) -> Requirement:
    if match["not"]:
        return Requirement(match["nkey"], "!")
    key = match["key"]
    if match["op"]:
        operator = "!=" if match["op"] == "!=" else "="
        return Requirement(key, operator, (match["value"],))
    if match["setop"]:
        values = tuple(v.strip() for v in match["set"].split(",") if v.strip())
        if not values:
            raise ValidationError(f"Invalid label selector: {key} {match['setop']} () is empty")
        return Requirement(key, match["setop"], values)
    return Requirement(key, "exists")
