"""Reading a repository's folder into declared objects: YAML documents of
`apiVersion: keelson.io/v1`, one kind per document, each validated with the same
serializer and spec checks as the API, every error naming its file and line. No database
(unit-tested in tests/unit/gitops); manifests by path read the checkout and may run
`kubectl kustomize` (gitops.sources)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from accounts.models import slug_validator
from applications.api.views import ApplicationCreateSerializer
from applications.manifests import ManifestError, parse_manifests
from applications.overrides import overrides_spec
from applications.spec import placement_spec, rollout_spec
from clusters.labels import LabelSelector
from gitops.declared import STATES
from gitops.parts import PARTS, Part, application_parts, inline_conflicts
from gitops.sources import rendered_manifests
from gitops.validation import Invalid, django_lines, serializer_errors, unknown_fields
from kube.safeyaml import YAMLInputError, load_all_with_lines, shorten
from policies.api.serializers import PolicyWriteSerializer
from policies.services.policies import PolicySpec, build_rules, rule_as_json

API_VERSION = "keelson.io/v1"
KINDS = ("ClusterSet", "Application", *PARTS, "Policy", *STATES)
# What a sync applies first: a policy, budget or report may target a cluster set, a
# policy where an application runs; removals go the other way.
APPLY_ORDER = {
    "ClusterSet": 0,
    "RateCard": 0,
    "Application": 1,
    "Budget": 1,
    "Policy": 2,
    "ReportDefinition": 2,
}
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 2000
SUFFIXES = (".yaml", ".yml")
CLUSTER_SET_FIELDS = ("description", "selector", "members")
APPLICATION_FIELDS = ("namespace", "description", "manifests", "kustomize", *PARTS.values())
POLICY_FIELDS = tuple(
    name for name in PolicyWriteSerializer().fields if name not in ("name", "team", "pss_version")
)


class DocumentErrors(Exception):
    """The repository's documents are not valid; `errors` name file and line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]))
        self.errors = errors


@dataclass(frozen=True)
class Document:
    """One YAML document as read: where it is and what it says."""

    file: str
    line: int
    kind: str
    name: str
    spec: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Desired:
    """An object as the repository declares it, in the form it is compared in
    (`state` has the same keys as gitops.state reads from the database)."""

    kind: str
    name: str
    file: str
    line: int
    state: dict[str, Any] = field(default_factory=dict)


def read_files(root: Path, folder: str = "") -> list[tuple[str, str]]:
    """(path relative to the repository, text) of every YAML file under `folder`, sorted;
    symbolic links and hidden folders are skipped."""
    base = (root / folder).resolve() if folder else root.resolve()
    if not base.is_relative_to(root.resolve()) or not base.is_dir():
        raise DocumentErrors([f"{folder or '.'}: no such folder in the repository"])
    found: list[tuple[str, str]] = []
    for path in sorted(base.rglob("*")):
        relative = path.relative_to(root.resolve())
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() or not path.is_file() or path.suffix not in SUFFIXES:
            continue
        if len(found) >= MAX_FILES:
            raise DocumentErrors([f"more than {MAX_FILES} YAML files under {folder or '.'}"])
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DocumentErrors([f"{relative}: larger than {MAX_FILE_BYTES:,} bytes"])
        found.append((relative.as_posix(), path.read_text(encoding="utf-8", errors="replace")))
    return found


def _document(file: str, line: int, data: Any) -> Document:
    where = f"{file}:{line}"
    if not isinstance(data, dict):
        raise DocumentErrors([f"{where}: a document must be a mapping"])
    if data.get("apiVersion") != API_VERSION:
        raise DocumentErrors([f"{where}: apiVersion must be {API_VERSION}"])
    kind = data.get("kind")
    if kind not in KINDS:
        raise DocumentErrors([f"{where}: kind must be one of {', '.join(KINDS)}"])
    unknown = sorted(set(data) - {"apiVersion", "kind", "metadata", "spec"})
    if unknown:
        raise DocumentErrors([f"{where}: unknown fields {', '.join(map(str, unknown))}"])
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise DocumentErrors([f"{where}: {kind} needs metadata.name"])
    if set(metadata or {}) - {"name"}:
        raise DocumentErrors(
            [f"{where}: metadata holds only name (the repository's team owns every object)"]
        )
    spec = data.get("spec", {})
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise DocumentErrors([f"{where}: spec must be a mapping"])
    return Document(file=file, line=line, kind=kind, name=name, spec=spec)


def parse_documents(files: list[tuple[str, str]]) -> list[Document]:
    """Every keelson.io/v1 document of `files`; DocumentErrors lists every problem."""
    documents: list[Document] = []
    errors: list[str] = []
    for file, text in files:
        try:
            loaded = load_all_with_lines(text, max_bytes=MAX_FILE_BYTES)
        except YAMLInputError as error:
            errors.append(f"{file}: {error}")
            continue
        for line, data in loaded:
            if data is None:
                continue
            try:
                documents.append(_document(file, line, data))
            except DocumentErrors as error:
                errors.extend(error.errors)
    if errors:
        raise DocumentErrors(errors)
    return documents


def _manifests_text(value: Any) -> Any:
    """Manifests inline as a YAML string, or as a list of objects (written out as YAML)."""
    if isinstance(value, list):
        return yaml.safe_dump_all(value, sort_keys=False) if value else ""
    return value


def _application(
    document: Document, team: str, parts: dict[str, Part], root: Path | None
) -> Desired:
    spec = dict(document.spec)
    unknown_fields(spec, APPLICATION_FIELDS)
    inline_conflicts(spec, parts)
    rendered = rendered_manifests(spec, root)
    spec.pop("kustomize", None)
    spec["manifests"] = _manifests_text(spec.get("manifests")) if rendered is None else rendered
    placement = spec.pop("placement", None)
    payload = ApplicationCreateSerializer(data={**spec, "name": document.name, "team": team})
    if not payload.is_valid():
        raise serializer_errors(payload.errors)
    data = payload.validated_data
    try:
        parse_manifests(data["manifests"])
    except ManifestError as error:
        raise ValidationError({"spec.manifests": error.errors}) from None
    # Parts declared by their own documents were checked there.
    if placement is not None:
        placement_spec(placement)
    overrides_spec(data.get("overrides"))
    rollout_spec(data.get("rollout"))
    state = {
        "namespace": data["namespace"],
        "description": data.get("description", ""),
        "manifests": data["manifests"],
        "placement": placement or {},
        "overrides": data.get("overrides") or [],
        "rollout": data.get("rollout") or {},
    }
    state.update({name: part.value for name, part in parts.items()})
    return Desired("Application", document.name, document.file, document.line, state)


def _cluster_set(document: Document) -> Desired:
    """Checked as the model checks it (the API's serializer looks members up in the
    database; a sync resolves them among the team's clusters when it applies)."""
    spec = dict(document.spec)
    unknown_fields(spec, CLUSTER_SET_FIELDS)
    slug_validator(document.name)
    if len(document.name) > 63:
        raise ValidationError({"metadata.name": ["At most 63 characters."]})
    description, selector = spec.get("description", ""), spec.get("selector", "")
    members = spec.get("members", [])
    if not isinstance(description, str):
        raise ValidationError({"spec.description": ["Use a string."]})
    if not isinstance(selector, str) or len(selector) > 1000:
        raise ValidationError(
            {"spec.selector": ["Use a label selector of at most 1000 characters."]}
        )
    if selector:
        LabelSelector.parse(selector)
    if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
        raise ValidationError({"spec.members": ["Use a list of cluster names."]})
    state = {"description": description, "selector": selector, "members": sorted(set(members))}
    return Desired("ClusterSet", document.name, document.file, document.line, state)


def _policy(document: Document, team: str) -> Desired:
    spec = dict(document.spec)
    unknown_fields(spec, POLICY_FIELDS)
    payload = PolicyWriteSerializer(data={**spec, "name": document.name, "team": team})
    if not payload.is_valid():
        raise serializer_errors(payload.errors)
    data = dict(payload.validated_data)
    data.pop("team")
    policy = PolicySpec(**data)
    policy.rules = [rule_as_json(rule) for rule in build_rules(policy.rules)]
    policy.cluster_sets = sorted(set(policy.cluster_sets))
    state = asdict(policy)
    del state["name"], state["pss_version"]
    return Desired("Policy", document.name, document.file, document.line, state)


def desired_objects(
    documents: list[Document], *, team: str, root: Path | None = None
) -> list[Desired]:
    """Validate every document as the API would for `team`; the objects to hold, in
    apply order. `root` is the repository's checkout (for manifests by path). DocumentErrors
    lists every problem with its file and line."""
    errors: list[str] = []
    seen: dict[tuple[str, str], Document] = {}
    for document in documents:
        key = (document.kind, document.name)
        if key in seen:
            errors.append(
                f"{document.where}: {document.kind} {document.name} is also declared at "
                f"{seen[key].where}"
            )
            continue
        seen[key] = document
    applications = {name for kind, name in seen if kind == "Application"}
    parts, part_errors = application_parts(list(seen.values()), applications)
    errors += part_errors
    desired: list[Desired] = []
    for (kind, name), document in seen.items():
        if kind in PARTS:
            continue
        try:
            if kind == "ClusterSet":
                desired.append(_cluster_set(document))
            elif kind == "Application":
                desired.append(_application(document, team, parts.get(name, {}), root))
            elif kind == "Policy":
                desired.append(_policy(document, team))
            else:
                state = STATES[kind](document)
                desired.append(Desired(kind, name, document.file, document.line, state))
        except (ValidationError, Invalid) as error:
            lines = error.lines if isinstance(error, Invalid) else django_lines(error)
            errors += [f"{document.where}: {kind} {name}: {shorten(line)}" for line in lines]
    if errors:
        raise DocumentErrors(errors)
    return sorted(desired, key=lambda d: (APPLY_ORDER[d.kind], d.name))
