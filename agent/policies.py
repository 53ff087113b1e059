"""Policies on the agent's own cluster: the hub cannot reach a pull cluster, so the agent
judges the policies the hub sends with the hub's own engine (`policies.engine`: the same
CEL, cut-down objects and verdicts) over a read made the hub's way
(`ClusterReader.list_kinds`), and enforces enforce-mode templates with the same
server-side apply (`kube.apply`). It reports raw judgements; the hub turns them into
results exactly as it does for push clusters (policies/services/agent.py).

The agent may import only the pure parts of `policies` (engine, CEL, reader, choices):
import-linter's "agent" contract in pyproject.toml keeps it off models and services.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from kube.apply import apply_manifest
from kube.client import ClusterConnectError
from policies.choices import ActionKind, ActionStatus, Mode, RuleKind
from policies.engine import Fix, Judgement, Snapshot, judge, kinds_needed, share
from policies.kube import ClusterReader

logger = logging.getLogger("keelson.agent")


@dataclass(frozen=True)
class Rule:
    """A rule as the hub sent it (what `policies.engine.RuleLike` asks for)."""

    name: str
    kind: str
    match: Any
    autogen: bool
    expression: str
    message: str
    compliance_type: str
    object_template: Any

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        return cls(
            name=str(data.get("name", "")),
            kind=str(data.get("kind", "")),
            match=data.get("match") or {},
            autogen=bool(data.get("autogen", True)),
            expression=str(data.get("expression") or ""),
            message=str(data.get("message") or ""),
            compliance_type=str(data.get("compliance_type") or ""),
            object_template=data.get("object_template") or {},
        )


@dataclass
class Evaluation:
    """What the agent reports: one result per policy and the enforcement actions taken."""

    results: list[dict[str, Any]]
    actions: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"results": self.results, "actions": self.actions}


def _facts(reader: ClusterReader, facts: dict[str, Any]) -> dict[str, Any]:
    """The hub's facts, with the version asked of the cluster when the hub has none yet."""
    version = facts.get("version") or {}
    if version.get("major"):
        return facts
    answer = reader.version()
    numbers = {k: re.match(r"\d*", str(answer.get(k) or "")) for k in ("major", "minor")}
    digits = {k: int(m.group() or 0) if m else 0 for k, m in numbers.items()}
    return {**facts, "version": {**digits, "gitVersion": answer.get("gitVersion", "")}}


def _read(
    reader: ClusterReader, policies: list[dict[str, Any]], facts: dict[str, Any]
) -> tuple[Snapshot, dict[tuple[str, str], str]]:
    rules = [rule for policy in policies for rule in policy["_rules"]]
    kinds = list(dict.fromkeys(kind for rule in rules for kind in kinds_needed(rule)))
    objects, namespaced, failed = reader.list_kinds(kinds)
    return Snapshot(objects, namespaced, facts, sharing=share(rules)), failed


def _result(
    policy: dict[str, Any], judgement: Judgement | None, error: str, listed: int
) -> dict[str, Any]:
    base = {"policy": policy["id"], "generation": policy["generation"]}
    if judgement is None:
        return {**base, "error": error}
    return {
        **base,
        "checked": judgement.checked,
        "violations": judgement.violations[:listed],
        "errors": judgement.errors[:listed],
        "violations_total": len(judgement.violations),
        "errors_total": len(judgement.errors),
    }


def _judge_all(
    reader: ClusterReader, policies: list[dict[str, Any]], facts: dict[str, Any]
) -> dict[int, tuple[Judgement | None, str]]:
    """Each policy's judgement over one read, or why the cluster could not be read for it."""
    try:
        snapshot, failed = _read(reader, policies, facts)
    except ClusterConnectError as error:
        return {
            p["id"]: (None, f"The cluster could not be read: {error.message}") for p in policies
        }
    judged: dict[int, tuple[Judgement | None, str]] = {}
    for policy in policies:
        needed = {kind for rule in policy["_rules"] for kind in kinds_needed(rule)}
        broken = sorted({failed[k] for k in needed if k in failed})
        if broken:
            judged[policy["id"]] = (None, f"The cluster could not be read: {broken[0]}")
        else:
            judged[policy["id"]] = (judge(policy["_rules"], snapshot), "")
    return judged


def _execute(reader: ClusterReader, policy: dict[str, Any], fix: Fix) -> dict[str, Any]:
    """One enforcement action, as the hub takes it (policies/services/enforcement.py)."""
    try:
        if fix.action == ActionKind.APPLY:
            assert fix.manifest is not None
            apply_manifest(reader.api, fix.manifest, owner_labels=policy.get("owner_labels") or {})
            status, message = ActionStatus.SUCCEEDED, f"applied ({fix.reason})"
        else:
            gone = reader.delete(fix.api_version, fix.kind, fix.name, fix.namespace)
            status, message = ActionStatus.SUCCEEDED, "deleted" if gone else "already gone"
    except ClusterConnectError as error:
        status, message = ActionStatus.FAILED, error.message
    return {
        "policy": policy["id"],
        "rule": fix.rule,
        "action": str(fix.action),
        "status": str(status),
        "target": fix.target(),
        "message": message[:1000],
    }


def evaluate(api: k8s.ApiClient, work: dict[str, Any]) -> Evaluation:
    """Judge every policy in `work` (the hub's `agent/policies` answer) on this cluster;
    enforce-mode policies found noncompliant get their template fixes applied and are
    judged again, so the result shows the fix (as the hub's sweep does)."""
    listed = int(work.get("max_listed", 500))
    policies = [
        {**p, "_rules": [Rule.from_json(r) for r in p.get("rules") or []]}
        for p in work.get("policies") or []
    ]
    reader = ClusterReader(api)
    try:
        facts = _facts(reader, dict(work.get("cluster") or {}))
    except ClusterConnectError as error:
        message = f"The cluster could not be read: {error.message}"
        return Evaluation([_result(p, None, message, listed) for p in policies], [])
    judged = _judge_all(reader, policies, facts)
    actions: list[dict[str, Any]] = []
    enforced = []
    for policy in policies:
        judgement, _ = judged[policy["id"]]
        if policy.get("mode") != Mode.ENFORCE or judgement is None or not judgement.violations:
            continue
        templates = {r.name for r in policy["_rules"] if r.kind == RuleKind.TEMPLATE}
        fixes = [fix for fix in judgement.fixes if fix.rule in templates]
        if fixes:
            actions += [_execute(reader, policy, fix) for fix in fixes]
            enforced.append(policy)
    if enforced:
        logger.info("enforced %d action(s) for %d policies", len(actions), len(enforced))
        judged |= _judge_all(ClusterReader(api), enforced, facts)
    results = [_result(p, *judged[p["id"]], listed) for p in policies]
    return Evaluation(results, actions)
