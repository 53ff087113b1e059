"""Error shapes shared by the document readers: a document's problems as "field: message"
lines, from DRF serializers or Django validation alike. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers
from rest_framework.validators import UniqueTogetherValidator, UniqueValidator


class Invalid(Exception):
    """One document's problems, as "field: message" lines."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = lines


def flatten(detail: Any, prefix: str = "") -> list[str]:
    """DRF or Django error detail as "field: message" lines."""
    if isinstance(detail, dict):
        lines: list[str] = []
        for key, value in detail.items():
            name = "" if key in ("__all__", "non_field_errors") else str(key)
            lines += flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in flatten(item, prefix)]
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def django_lines(error: ValidationError) -> list[str]:
    return flatten(error.message_dict if hasattr(error, "error_dict") else error.messages)


def serializer_errors(errors: dict[str, Any], prefix: str = "spec") -> Invalid:
    """The API's field names as the document's: `name` is metadata.name, the rest spec.*."""
    renamed = {("metadata.name" if k == "name" else f"{prefix}.{k}"): v for k, v in errors.items()}
    return Invalid(flatten(renamed))


def unknown_fields(spec: dict[str, Any], known: Iterable[Any]) -> None:
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ValidationError({"spec": [f"unknown fields {', '.join(map(str, unknown))}"]})


def api_validated(
    serializer_class: type[serializers.Serializer[Any]],
    data: dict[str, Any],
    *,
    without: tuple[str, ...] = (),
    prefix: str = "spec",
) -> dict[str, Any]:
    """`data` validated by the API's own serializer, minus what needs the database: the
    fields in `without` (a team, a related row: a sync resolves them when it applies) and
    uniqueness checks (a sync's conflicts and the services check those)."""
    serializer = serializer_class(data=data)
    for name in without:
        serializer.fields.pop(name, None)
    serializer.validators = [
        v for v in serializer.validators if not isinstance(v, UniqueTogetherValidator)
    ]
    for field in serializer.fields.values():
        field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
    if not serializer.is_valid():
        raise serializer_errors(serializer.errors, prefix)
    return dict(serializer.validated_data)
