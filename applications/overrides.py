"""Per-cluster overrides of an application's manifests, as Karmada's OverridePolicy: each
rule targets clusters (by name or label selector) and changes the rendered objects: image,
replicas, labels/annotations, or JSON-pointer patches (add/replace/remove). Rules apply in
order, so a later rule wins."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from applications.manifests import WORKLOAD_KINDS
from clusters.labels import LabelSelector, label_key_error

SCALABLE_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}
PATCH_OPS = ("add", "replace", "remove")


@dataclass(frozen=True)
class Patch:
    op: str
    path: str
    value: Any = None
    kind: str = ""  # only objects of this kind (all when empty)
    name: str = ""  # only objects of this name


@dataclass(frozen=True)
class Override:
    clusters: tuple[str, ...] = ()
    selector: str = ""
    image: str = ""  # every container of every workload
    images: dict[str, str] = field(default_factory=dict)  # container name -> image
    replicas: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    patches: tuple[Patch, ...] = ()

    def targets(self, cluster: str, labels: dict[str, str]) -> bool:
        if self.clusters and cluster not in self.clusters:
            return False
        return LabelSelector.parse(self.selector).matches(labels)


def overrides_spec(data: Any) -> list[Override]:
    """Parse untrusted JSON into overrides; errors name the rule and the field."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValidationError({"overrides": "A list of override rules."})
    rules, errors = [], []
    for position, item in enumerate(data, start=1):
        try:
            rules.append(_rule(item))
        except ValueError as error:
            errors.append(f"Override {position}: {error}")
    if errors:
        raise ValidationError({"overrides": errors})
    return rules


def _str_map(value: Any, what: str, *, keys_are_labels: bool = False) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{what} must map strings to strings")
    if keys_are_labels:
        for key in value:
            if error := label_key_error(key):
                raise ValueError(f"{what}: {error}")
    return dict(value)


def _rule(item: Any) -> Override:
    if not isinstance(item, dict):
        raise ValueError("must be an object")
    unknown = set(item) - {
        "clusters",
        "selector",
        "image",
        "images",
        "replicas",
        "labels",
        "annotations",
        "patches",
    }
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    clusters = item.get("clusters") or []
    if not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters):
        raise ValueError("clusters must be a list of cluster names")
    selector = item.get("selector") or ""
    if not isinstance(selector, str):
        raise ValueError("selector must be a label selector string")
    try:
        LabelSelector.parse(selector)
    except ValidationError as error:
        raise ValueError(f"selector: {error.messages[0]}") from None
    image = item.get("image") or ""
    if not isinstance(image, str):
        raise ValueError("image must be a string")
    replicas = item.get("replicas")
    if replicas is not None and (
        not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0
    ):
        raise ValueError("replicas must be 0 or more")
    patches = []
    for index, raw in enumerate(item.get("patches") or [], start=1):
        if not isinstance(raw, dict) or raw.get("op") not in PATCH_OPS:
            raise ValueError(f"patch {index}: op must be one of {', '.join(PATCH_OPS)}")
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/") or path == "/":
            raise ValueError(f"patch {index}: path must be a JSON pointer like /spec/replicas")
        if raw["op"] != "remove" and "value" not in raw:
            raise ValueError(f"patch {index}: {raw['op']} needs a value")
        patches.append(
            Patch(
                op=raw["op"],
                path=path,
                value=raw.get("value"),
                kind=str(raw.get("kind") or ""),
                name=str(raw.get("name") or ""),
            )
        )
    return Override(
        clusters=tuple(clusters),
        selector=selector,
        image=image,
        images=_str_map(item.get("images"), "images"),
        replicas=replicas,
        labels=_str_map(item.get("labels"), "labels", keys_are_labels=True),
        annotations=_str_map(item.get("annotations"), "annotations"),
        patches=tuple(patches),
    )


class PatchError(ValueError):
    pass


def _tokens(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def json_patch(document: dict[str, Any], patch: Patch) -> None:
    """Apply one RFC 6902 add/replace/remove in place. Raises PatchError naming the path."""
    tokens = _tokens(patch.path)
    parent: Any = document
    for token in tokens[:-1]:
        if isinstance(parent, list):
            if not token.isdigit() or int(token) >= len(parent):
                raise PatchError(f"{patch.path}: no element {token}")
            parent = parent[int(token)]
        elif isinstance(parent, dict):
            if token not in parent:
                if patch.op != "add":
                    raise PatchError(f"{patch.path}: {token} does not exist")
                parent[token] = {}
            parent = parent[token]
        else:
            raise PatchError(f"{patch.path}: {token} is not an object or a list")
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-" and patch.op == "add":
            parent.append(copy.deepcopy(patch.value))
            return
        if (
            not last.isdigit()
            or int(last) > len(parent)
            or (patch.op != "add" and int(last) == len(parent))
        ):
            raise PatchError(f"{patch.path}: no element {last}")
        index = int(last)
        if patch.op == "add":
            parent.insert(index, copy.deepcopy(patch.value))
        elif patch.op == "replace":
            parent[index] = copy.deepcopy(patch.value)
        else:
            del parent[index]
        return
    if not isinstance(parent, dict):
        raise PatchError(f"{patch.path}: the parent is not an object")
    if patch.op in ("replace", "remove") and last not in parent:
        raise PatchError(f"{patch.path}: {last} does not exist")
    if patch.op == "remove":
        del parent[last]
    else:
        parent[last] = copy.deepcopy(patch.value)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        pod = spec
    elif obj.get("kind") == "CronJob":
        pod = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec"
        ) or {}
    elif obj.get("kind") in WORKLOAD_KINDS:
        pod = (spec.get("template") or {}).get("spec") or {}
    else:
        return []
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])


def apply_override(objects: list[dict[str, Any]], rule: Override) -> None:
    """Change `objects` (already copies) in place by one rule."""
    for obj in objects:
        for container in _containers(obj):
            if rule.image:
                container["image"] = rule.image
            if container.get("name") in rule.images:
                container["image"] = rule.images[container["name"]]
        if rule.replicas is not None and obj.get("kind") in SCALABLE_KINDS:
            obj.setdefault("spec", {})["replicas"] = rule.replicas
        metadata = obj.setdefault("metadata", {})
        if rule.labels:
            metadata["labels"] = {**(metadata.get("labels") or {}), **rule.labels}
        if rule.annotations:
            metadata["annotations"] = {**(metadata.get("annotations") or {}), **rule.annotations}
        for patch in rule.patches:
            if patch.kind and patch.kind != obj.get("kind"):
                continue
            if patch.name and patch.name != metadata.get("name"):
                continue
            json_patch(obj, patch)
