"""Documents that declare one part of an application: `Placement` (named as its
application), `Overrides` and `RolloutStrategy` (`spec.application: <name>`). Each is
checked where it is declared, with the API's serializer and spec checks, and joins its
application's state; the same part also declared inline in the Application, or by a
second document, is an error naming both files. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from applications.api.views import ApplicationUpdateSerializer
from applications.overrides import overrides_spec
from applications.spec import RolloutSpec, placement_spec, rollout_spec
from gitops.validation import Invalid, api_validated, django_lines, unknown_fields
from kube.safeyaml import shorten

if TYPE_CHECKING:
    from gitops.documents import Document

# Kind -> the application's field it declares.
PARTS = {"Placement": "placement", "Overrides": "overrides", "RolloutStrategy": "rollout"}
ROLLOUT_FIELDS = tuple(RolloutSpec.__dataclass_fields__)


@dataclass(frozen=True)
class Part:
    document: Document
    application: str
    field: str
    value: Any


def _application_name(spec: dict[str, Any]) -> str:
    name = spec.get("application")
    if not isinstance(name, str) or not name:
        raise ValidationError({"spec.application": ["Name the application (a string)."]})
    return name


def _part(document: Document) -> Part:
    spec = dict(document.spec)
    if document.kind == "Placement":
        placement_spec(spec)
        return Part(document, document.name, "placement", spec)
    if document.kind == "Overrides":
        unknown_fields(spec, ("application", "overrides"))
        name, value = _application_name(spec), spec.get("overrides") or []
        api_validated(ApplicationUpdateSerializer, {"overrides": value})
        overrides_spec(value)
        return Part(document, name, "overrides", value)
    unknown_fields(spec, ("application", *ROLLOUT_FIELDS))
    name = _application_name(spec)
    del spec["application"]
    api_validated(ApplicationUpdateSerializer, {"rollout": spec})
    rollout_spec(spec)
    return Part(document, name, "rollout", spec)


def application_parts(
    documents: list[Document], applications: set[str]
) -> tuple[dict[str, dict[str, Part]], list[str]]:
    """{application: {field: Part}} of every part document, and the errors (file:line)."""
    parts: dict[str, dict[str, Part]] = {}
    errors: list[str] = []
    for document in documents:
        if document.kind not in PARTS:
            continue
        label = f"{document.where}: {document.kind} {document.name}"
        try:
            part = _part(document)
        except (ValidationError, Invalid) as error:
            lines = error.lines if isinstance(error, Invalid) else django_lines(error)
            errors += [f"{label}: {shorten(line)}" for line in lines]
            continue
        if part.application not in applications:
            errors.append(f"{label}: no Application {part.application} declared")
            continue
        other = parts.setdefault(part.application, {}).get(part.field)
        if other is not None:
            errors.append(
                f"{label}: the {part.field} of {part.application} is also declared by "
                f"{other.document.kind} {other.document.name} at {other.document.where}"
            )
            continue
        parts[part.application][part.field] = part
    return parts, errors


def inline_conflicts(spec: dict[str, Any], parts: dict[str, Part]) -> None:
    """An application declares each part once: inline or by its own document."""
    both = {
        f"spec.{name}": [
            f"also declared by {part.document.kind} {part.document.name} at "
            f"{part.document.where}; declare it in one place"
        ]
        for name, part in parts.items()
        if name in spec
    }
    if both:
        raise ValidationError(both)
