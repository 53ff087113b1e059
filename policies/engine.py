"""Judging a cluster's objects against a policy's rules: pure logic, no I/O.

The evaluation service lists each needed kind once into a `Snapshot`; `judge` runs every
rule of one policy over it and returns the violations, the objects it could not judge and
what enforcement would change (`fixes`). A rule that fails on one object records that
object as an error and goes on.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.exceptions import ValidationError

from policies import cel, celpaths
from policies.choices import ActionKind, ComplianceType, RuleKind
from policies.objects import (
    SYSTEM_NAMESPACES,
    Match,
    Owners,
    Subject,
    contains,
    dig,
    expanded_kinds,
    group_of,
    kind_text,
    matches_only,
    subjects_for,
)


class RuleLike(Protocol):
    name: str
    kind: str
    match: Any
    autogen: bool
    expression: str
    message: str
    compliance_type: str
    object_template: Any


# Per subject list: the union shape verdicts are keyed by, and the expressions it covers.
Sharing = dict[tuple[str, bool], tuple[celpaths.Shape, frozenset[str]]]


@dataclass
class Snapshot:
    """What was read from one cluster: objects per (group, kind), which kinds are
    namespaced, and the cluster itself as cluster rules see it."""

    objects: dict[tuple[str, str], list[dict[str, Any]]]
    namespaced: dict[tuple[str, str], bool]
    cluster: dict[str, Any]
    _owners: Owners | None = None
    # Conversions shared by every rule over the same snapshot (ids of objects it holds).
    views: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    _activations: dict[int, cel.Activation] = field(default_factory=dict)
    _memo: cel.Memo = field(default_factory=cel.Memo)
    _cluster_activation: cel.Activation | None = None
    _subjects: dict[tuple[str, bool], list[Subject]] = field(default_factory=dict)
    # Per subject list, the union of its rules' reads that verdicts are keyed by (`share`).
    sharing: Sharing = field(default_factory=dict)

    def subjects(self, rule: RuleLike, key: tuple[str, bool] | None = None) -> list[Subject]:
        """What an object rule judges; rules with the same match (most Pod rules) share
        one list."""
        key = key or subject_key(rule)
        found = self._subjects.get(key)
        if found is None:
            match = Match.parse(rule.match or {})
            found = self._subjects[key] = subjects_for(
                match, rule.autogen, self.objects, self.views
            )
        return found

    def share_for(self, rule: RuleLike, key: tuple[str, bool]) -> celpaths.Shape | None:
        """The shape `rule`'s verdicts are keyed by when it is not its own (`share`)."""
        found = self.sharing.get(key)
        return found[0] if found is not None and rule.expression in found[1] else None

    def activation(self, body: dict[str, Any]) -> cel.Activation:
        """`body` as `object` for every rule over this snapshot (converted once)."""
        found = self._activations.get(id(body))
        if found is None:
            found = self._activations[id(body)] = cel.Activation("object", body, self._memo)
        return found

    def cluster_activation(self) -> cel.Activation:
        """The cluster as `cluster` for every cluster rule (converted once)."""
        if self._cluster_activation is None:
            self._cluster_activation = cel.Activation("cluster", self.cluster, self._memo)
        return self._cluster_activation

    @property
    def owners(self) -> Owners:
        if self._owners is None:
            self._owners = Owners(self.objects)
        return self._owners

    def namespaces(self) -> list[str]:
        return sorted(
            str(dig(ns, "metadata", "name")) for ns in self.objects.get(("", "Namespace"), [])
        )


@dataclass
class Fix:
    """One change enforcement would make."""

    rule: str
    action: ActionKind
    api_version: str
    kind: str
    namespace: str
    name: str
    manifest: dict[str, Any] | None = None
    reason: str = ""

    def target(self) -> dict[str, str]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": str(self.action),
            **self.target(),
            "reason": self.reason,
        }


@dataclass
class Judgement:
    violations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    checked: int = 0


def kinds_needed(rule: RuleLike) -> list[tuple[str, str]]:
    """The (group, kind)s the service must list for `rule`."""
    if rule.kind == RuleKind.OBJECT:
        return expanded_kinds(Match.parse(rule.match or {}), rule.autogen)
    if rule.kind == RuleKind.TEMPLATE:
        template = rule.object_template or {}
        group = group_of(str(template.get("apiVersion", "")))
        return [(group, str(template.get("kind", ""))), ("", "Namespace")]
    return []


def judge(rules: Sequence[RuleLike], snapshot: Snapshot) -> Judgement:
    result = Judgement()
    for rule in rules:
        if rule.kind == RuleKind.OBJECT:
            _judge_objects(rule, snapshot, result)
        elif rule.kind == RuleKind.TEMPLATE:
            _judge_template(rule, snapshot, result)
        else:
            _judge_cluster(rule, snapshot, result)
    return result


def subject_key(rule: RuleLike) -> tuple[str, bool]:
    """Rules with equal keys judge the same objects."""
    return (json.dumps(rule.match or {}, sort_keys=True), bool(rule.autogen))


def share(rules: Iterable[RuleLike]) -> Sharing:
    """For each subject list, the union of what its rules read outside `metadata`, and
    the expressions it covers. Verdicts are keyed by a subject cut down to the union, so
    an object is cut once for all of them rather than once per rule, and equal workloads
    in other clusters still share verdicts. `metadata` stays out: names, uids and
    per-object annotations live there, and one such path in the union would make every
    key unique; rules reading it keep their own cut."""
    groups: dict[tuple[str, bool], dict[str, celpaths.Shape]] = {}
    for rule in rules:
        if rule.kind != RuleKind.OBJECT:
            continue
        try:
            shape = cel.reads(rule.expression, "object")
        except ValidationError:
            continue
        if shape is None or shape.star is not None or "metadata" in shape.fields:
            continue
        groups.setdefault(subject_key(rule), {})[rule.expression] = shape
    return {
        key: (celpaths.union(list(found.values())), frozenset(found))
        for key, found in groups.items()
        if len(found) > 1
    }


def _judge_objects(rule: RuleLike, snapshot: Snapshot, result: Judgement) -> None:
    key = subject_key(rule)
    shared = snapshot.share_for(rule, key)
    for subject in snapshot.subjects(rule, key):
        result.checked += 1
        try:
            passed = cel.evaluate(rule.expression, snapshot.activation(subject.body), shared)
        except cel.CelEvaluationError as error:
            result.errors.append({"rule": rule.name, **subject.ref(), "message": str(error)})
            continue
        if not passed:
            result.violations.append(
                {
                    "rule": rule.name,
                    **subject.ref(),
                    "message": rule.message or f"{subject.kind} fails {rule.name}",
                    "controller": snapshot.owners.controller(subject.raw),
                }
            )


def _template_namespaces(rule: RuleLike, snapshot: Snapshot, namespaced: bool) -> list[str]:
    template = rule.object_template or {}
    if not namespaced:
        return [""]
    fixed = dig(template, "metadata", "namespace")
    if fixed:
        return [str(fixed)]
    match = Match.parse(rule.match or {})
    return [
        ns
        for ns in snapshot.namespaces()
        if match.namespace_matches(ns) and (ns not in SYSTEM_NAMESPACES or ns in match.namespaces)
    ]


def _judge_template(rule: RuleLike, snapshot: Snapshot, result: Judgement) -> None:
    template = rule.object_template or {}
    api_version, kind = str(template.get("apiVersion", "")), str(template.get("kind", ""))
    key = (group_of(api_version), kind)
    namespaced = snapshot.namespaced.get(key, True)
    name = str(dig(template, "metadata", "name") or "")
    objects = snapshot.objects.get(key, [])
    compliance = rule.compliance_type or ComplianceType.MUSTHAVE
    for namespace in _template_namespaces(rule, snapshot, namespaced):
        result.checked += 1
        here = [o for o in objects if (dig(o, "metadata", "namespace") or "") == namespace]
        where = f" in namespace {namespace}" if namespace else ""
        ref = {"kind": kind, "namespace": namespace, "name": name}
        if compliance == ComplianceType.MUSTNOTHAVE:
            wanted = {k: v for k, v in template.items() if k not in ("apiVersion", "kind")}
            for found in here:
                if name and dig(found, "metadata", "name") != name:
                    continue
                if not contains(found, _without_name_namespace(wanted)):
                    continue
                found_name = str(dig(found, "metadata", "name"))
                result.violations.append(
                    {
                        "rule": rule.name,
                        **ref,
                        "name": found_name,
                        "message": rule.message or f"{kind} {found_name} must not exist{where}",
                        "controller": "",
                    }
                )
                result.fixes.append(
                    Fix(
                        rule.name,
                        ActionKind.DELETE,
                        api_version,
                        kind,
                        namespace,
                        found_name,
                        reason=f"{kind} {found_name} must not exist{where}",
                    )
                )
            continue
        existing = next((o for o in here if dig(o, "metadata", "name") == name), None)
        manifest = copy.deepcopy(template)
        if namespace:
            manifest.setdefault("metadata", {})["namespace"] = namespace
        check = matches_only if compliance == ComplianceType.MUSTONLYHAVE else contains
        if existing is None:
            problem = f"{kind} {name} is missing{where}"
        elif not check(existing, _without_name_namespace(manifest)):
            problem = f"{kind} {name}{where} differs from the template"
        else:
            continue
        result.violations.append(
            {"rule": rule.name, **ref, "message": rule.message or problem, "controller": ""}
        )
        result.fixes.append(
            Fix(rule.name, ActionKind.APPLY, api_version, kind, namespace, name, manifest, problem)
        )


def _without_name_namespace(template: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(template)
    body.pop("apiVersion", None)
    body.pop("kind", None)
    meta = body.get("metadata") or {}
    meta.pop("name", None)
    meta.pop("namespace", None)
    if not meta:
        body.pop("metadata", None)
    return body


def _judge_cluster(rule: RuleLike, snapshot: Snapshot, result: Judgement) -> None:
    result.checked += 1
    name = str(snapshot.cluster.get("name", ""))
    ref = {"kind": "Cluster", "namespace": "", "name": name}
    try:
        passed = cel.evaluate(rule.expression, snapshot.cluster_activation())
    except cel.CelEvaluationError as error:
        result.errors.append({"rule": rule.name, **ref, "message": str(error)})
        return
    if not passed:
        result.violations.append(
            {
                "rule": rule.name,
                **ref,
                "message": rule.message or f"cluster fails {rule.name}",
                "controller": "",
            }
        )


def validate_rule(rule: RuleLike) -> None:
    """Raise django ValidationError naming what is wrong with the rule (CEL position,
    missing template fields, bad selector)."""
    from django.core.exceptions import ValidationError

    prefix = f"rule {rule.name!r}: "
    try:
        if rule.kind not in RuleKind.values:
            raise ValidationError(f"kind must be one of {', '.join(RuleKind.values)}")
        if not isinstance(rule.match or {}, dict):
            raise ValidationError("match must be an object")
        match = Match.parse(rule.match or {})
        if rule.kind == RuleKind.OBJECT:
            if not match.kinds:
                raise ValidationError('an object rule needs match.kinds (e.g. ["Pod"])')
            for group, kind in match.kinds:
                if not kind or not kind[0].isupper():
                    raise ValidationError(f"{kind_text(group, kind)!r} is not a kind")
            cel.validate_expression(rule.expression)
        elif rule.kind == RuleKind.CLUSTER:
            cel.validate_expression(rule.expression)
        else:
            _validate_template(rule)
    except ValidationError as error:
        raise ValidationError([prefix + message for message in error.messages]) from None


def _validate_template(rule: RuleLike) -> None:
    from django.core.exceptions import ValidationError

    template = rule.object_template
    if rule.compliance_type not in ComplianceType.values:
        raise ValidationError(f"compliance type must be one of {', '.join(ComplianceType.values)}")
    if not isinstance(template, dict) or not template:
        raise ValidationError("an object template is required")
    missing = [k for k in ("apiVersion", "kind") if not template.get(k)]
    if missing:
        raise ValidationError(f"the object template needs {' and '.join(missing)}")
    kind = str(template["kind"])
    if "/" in kind or not kind[0].isupper():
        raise ValidationError(f"the template kind {template['kind']!r} is not a kind")
    if rule.compliance_type != ComplianceType.MUSTNOTHAVE and not dig(template, "metadata", "name"):
        raise ValidationError("the object template needs metadata.name")
