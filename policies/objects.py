"""Objects as rules see them: kinds across API versions, pod templates as Pods, owners.

Pod rules run over Pods and over the pod template of every workload controller, as
Kyverno's auto-generated rules do: the template is turned into a Pod-shaped object named
after its controller, so a violation names the Deployment, not only its pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clusters.labels import LabelSelector

# (group, kind) -> path of the pod template inside the controller.
POD_CONTROLLERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}
POD = ("", "Pod")
# Namespaces a namespaced template rule never targets unless it names them.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_GROUPS = {kind: group for group, kind in [*POD_CONTROLLERS, POD]}
_GROUPS.update({"NetworkPolicy": "networking.k8s.io", "Namespace": "", "ConfigMap": ""})


def parse_kind(text: str) -> tuple[str, str]:
    """`apps/Deployment` -> ("apps", "Deployment"); `Pod` -> ("", "Pod"); a well-known kind
    without a group gets its group (`Deployment` -> apps)."""
    group, _, kind = text.strip().rpartition("/")
    if not group and kind in _GROUPS:
        group = _GROUPS[kind]
    return group, kind


def kind_text(group: str, kind: str) -> str:
    return f"{group}/{kind}" if group else kind


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Subject:
    """One thing a rule judges: a real object, or the Pod view of a controller's template."""

    group: str
    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    raw: dict[str, Any]

    def ref(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


def pod_view(group: str, kind: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The Pod a controller's template describes, or None if `kind` has no pod template.
    The view shares the template's values (rules only read it): its own are the top
    level and `metadata`, which takes the controller's name and namespace."""
    path = POD_CONTROLLERS.get((group, kind))
    if path is None:
        return None
    template = dig(obj, *path) or {}
    metadata = dict(template.get("metadata") or {})
    metadata["name"] = dig(obj, "metadata", "name")
    metadata["namespace"] = dig(obj, "metadata", "namespace")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec") or {},
    }


@dataclass(frozen=True)
class Match:
    """Which objects a rule looks at (parsed from `PolicyRule.match`)."""

    kinds: tuple[tuple[str, str], ...]
    namespaces: frozenset[str]
    exclude_namespaces: frozenset[str]
    selector: LabelSelector | None

    @classmethod
    def parse(cls, match: dict[str, Any]) -> Match:
        selector = str(match.get("labelSelector") or "")
        return cls(
            kinds=tuple(parse_kind(str(k)) for k in match.get("kinds") or []),
            namespaces=frozenset(match.get("namespaces") or []),
            exclude_namespaces=frozenset(match.get("excludeNamespaces") or []),
            selector=LabelSelector.parse(selector) if selector else None,
        )

    def namespace_matches(self, namespace: str) -> bool:
        if namespace in self.exclude_namespaces:
            return False
        return not self.namespaces or namespace in self.namespaces

    def object_matches(self, obj: dict[str, Any]) -> bool:
        namespace = str(dig(obj, "metadata", "namespace") or "")
        if namespace and not self.namespace_matches(namespace):
            return False
        labels = dig(obj, "metadata", "labels") or {}
        return self.selector is None or self.selector.matches(labels)


def expanded_kinds(match: Match, autogen: bool) -> list[tuple[str, str]]:
    """The kinds to list for a rule: a Pod rule also covers every pod controller."""
    kinds = list(dict.fromkeys(match.kinds))
    if autogen and POD in kinds:
        kinds += [kind for kind in POD_CONTROLLERS if kind not in kinds]
    return kinds


def subjects_for(
    match: Match,
    autogen: bool,
    listed: dict[tuple[str, str], list[dict[str, Any]]],
    views: dict[int, dict[str, Any] | None] | None = None,
) -> list[Subject]:
    """What a CEL object rule judges, from the objects listed per kind. `views` caches
    the Pod views of controllers across rules (keyed by the listed object's id)."""
    views = {} if views is None else views
    pod_rule = autogen and POD in match.kinds
    subjects: list[Subject] = []
    for group, kind in expanded_kinds(match, autogen):
        for obj in listed.get((group, kind), []):
            if not match.object_matches(obj):
                continue
            body = obj
            if pod_rule and (group, kind) != POD and (group, kind) not in match.kinds:
                if id(obj) not in views:
                    views[id(obj)] = pod_view(group, kind, obj)
                view = views[id(obj)]
                if view is None:
                    continue
                body = view
            subjects.append(
                Subject(
                    group,
                    kind,
                    str(dig(obj, "metadata", "namespace") or ""),
                    str(dig(obj, "metadata", "name") or ""),
                    body,
                    obj,
                )
            )
    return subjects


class Owners:
    """Resolve an object to its top-level controller (Pod -> ReplicaSet -> Deployment)."""

    def __init__(self, listed: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self._by_uid: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for (_, kind), objects in listed.items():
            for obj in objects:
                uid = dig(obj, "metadata", "uid")
                if uid:
                    self._by_uid[uid] = (kind, str(dig(obj, "metadata", "name")), obj)

    def controller(self, obj: dict[str, Any]) -> str:
        """`Kind/name` of the top-level controller, or "" for an object nobody controls."""
        found = ""
        seen: set[str] = set()
        while True:
            refs = [r for r in dig(obj, "metadata", "ownerReferences") or [] if r.get("controller")]
            if not refs or refs[0].get("uid") in seen:
                return found
            ref = refs[0]
            seen.add(ref.get("uid", ""))
            found = f"{ref.get('kind')}/{ref.get('name')}"
            owner = self._by_uid.get(ref.get("uid", ""))
            if owner is None:
                return found
            obj = owner[2]


def contains(actual: Any, wanted: Any) -> bool:
    """musthave semantics: every field in `wanted` is in `actual` with the same value;
    every item of a wanted list matches some item of the actual list."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(actual, list) and all(
            any(contains(item, w) for item in actual) for w in wanted
        )
    return bool(actual == wanted)


def matches_only(actual: Any, wanted: Any) -> bool:
    """mustonlyhave semantics: like `contains`, but lists must hold exactly the wanted
    items (no more). Extra map keys are tolerated: the API server fills in defaults."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches_only(actual[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(any(matches_only(item, w) for item in actual) for w in wanted)
            and all(any(matches_only(item, w) for w in wanted) for item in actual)
        )
    return bool(actual == wanted)
