"""Creating, changing and deleting policies. Every rule is validated before anything is
saved: bad CEL is refused with its line, column and reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Team, slug_validator
from accounts.permissions import require_role
from applications.models import Application
from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.labels import LabelSelector
from clusters.models import ClusterSet
from core.celery import task_send
from policies.choices import Mode, RuleKind, Severity
from policies.engine import validate_rule
from policies.external.guard import refuse_external
from policies.library import LATEST, PSS_VERSION_CHOICES, is_versioned, library_entry
from policies.models import Policy, PolicyRule
from policies.services.evaluation import (
    BATCH_SIZE,
    EVALUATE_INTERVAL,
    EVALUATE_TASK,
    policy_clusters,
)

logger = logging.getLogger(__name__)
RULE_FIELDS = (
    "name",
    "kind",
    "match",
    "autogen",
    "expression",
    "message",
    "compliance_type",
    "object_template",
)


@dataclass
class PolicySpec:
    """What a policy checks and where; the input of create and update."""

    name: str
    description: str = ""
    severity: str = Severity.MEDIUM
    standards: list[str] = field(default_factory=list)
    cluster_sets: list[str] = field(default_factory=list)
    cluster_selector: str = ""
    placement: str = ""  # an application of the team: where it runs
    mode: str = Mode.INFORM
    enabled: bool = True
    rules: list[dict[str, Any]] = field(default_factory=list)
    # Bundled Pod Security Standards policies only: the standard's version to check.
    pss_version: str = LATEST

    @classmethod
    def of(cls, policy: Policy) -> PolicySpec:
        return cls(
            name=policy.name,
            description=policy.description,
            severity=policy.severity,
            standards=list(policy.standards),
            cluster_sets=sorted(s.name for s in policy.cluster_sets.all()),
            cluster_selector=policy.cluster_selector,
            placement=policy.placement,
            mode=policy.mode,
            enabled=policy.enabled,
            rules=[rule_as_json(rule) for rule in policy.rules.all()],
            pss_version=policy.pss_version,
        )


def rule_as_json(rule: PolicyRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in RULE_FIELDS}


def build_rules(raw: list[dict[str, Any]]) -> list[PolicyRule]:
    """Unsaved rules from their JSON form; ValidationError {"rules": [...]} lists every
    problem (CEL position and reason included)."""
    if not isinstance(raw, list) or not raw:
        raise ValidationError({"rules": ["A policy needs at least one rule."]})
    rules: list[PolicyRule] = []
    errors: list[str] = []
    seen: set[str] = set()
    for position, data in enumerate(raw, start=1):
        if not isinstance(data, dict):
            errors.append(f"rule #{position}: must be an object")
            continue
        unknown = set(data) - set(RULE_FIELDS)
        if unknown:
            errors.append(f"rule #{position}: unknown fields {', '.join(sorted(unknown))}")
            continue
        name = str(data.get("name") or f"rule-{position}")
        rule = PolicyRule(
            name=name,
            kind=str(data.get("kind") or RuleKind.OBJECT),
            match=data.get("match") or {},
            autogen=bool(data.get("autogen", True)),
            expression=str(data.get("expression") or ""),
            message=str(data.get("message") or "")[:500],
            compliance_type=str(data.get("compliance_type") or ""),
            object_template=data.get("object_template") or {},
            position=position,
        )
        try:
            slug_validator(name)
            if name in seen:
                raise ValidationError(f"rule {name!r} appears twice")
            validate_rule(rule)
        except ValidationError as error:
            errors.extend(error.messages)
        seen.add(name)
        rules.append(rule)
    if errors:
        raise ValidationError({"rules": errors})
    return rules


def _validate(team: Team, spec: PolicySpec) -> list[ClusterSet]:
    errors: dict[str, list[str]] = {}
    spec.cluster_sets = sorted(set(spec.cluster_sets))
    try:
        slug_validator(spec.name)
    except ValidationError as error:
        errors["name"] = error.messages
    if spec.severity not in Severity.values:
        errors["severity"] = [f"Use one of {', '.join(Severity.values)}."]
    if spec.mode not in Mode.values:
        errors["mode"] = [f"Use one of {', '.join(Mode.values)}."]
    if not isinstance(spec.standards, list) or not all(
        isinstance(s, str) and s for s in spec.standards
    ):
        errors["standards"] = ["Use a list of standard or control ids."]
    if spec.pss_version not in PSS_VERSION_CHOICES:
        errors["pss_version"] = [f"Use one of {', '.join(PSS_VERSION_CHOICES)}."]
    if spec.cluster_selector:
        try:
            LabelSelector.parse(spec.cluster_selector)
        except ValidationError as error:
            errors["cluster_selector"] = error.messages
    if spec.placement and not Application.objects.filter(team=team, name=spec.placement).exists():
        errors["placement"] = [f"No application named {spec.placement} in the team."]
    sets = list(ClusterSet.objects.filter(team=team, name__in=spec.cluster_sets))
    missing = set(spec.cluster_sets) - {s.name for s in sets}
    if missing:
        errors["cluster_sets"] = [f"No such cluster set in the team: {', '.join(sorted(missing))}."]
    if errors:
        raise ValidationError(errors)
    return sets


# Enforcement writes into and deletes from member clusters: only this role may turn it on
# or change what an enforcing policy does (the same role as the enforce-now action).
ENFORCE_ROLE = Role.ADMIN


def _authorize_enforce(team: Team, actor: AbstractBaseUser | None) -> None:
    """Refuse a user without the enforce role. `actor=None` is the system (library,
    management commands, benchmarks), which has no role to check."""
    if actor is not None:
        require_role(
            actor,
            team,
            ENFORCE_ROLE,
            doing="set a policy to enforce or change an enforcing policy",
        )


PIN_REFUSED = "Only the bundled Pod Security Standards policies can pin the standard's version."


def _rules_at(policy: Policy, version: str) -> list[dict[str, Any]]:
    """The rules of a bundled PSS policy at a standard version: pinning a version means
    checking what the standard said then (its rules replace the current ones)."""
    if version not in PSS_VERSION_CHOICES:
        raise ValidationError({"pss_version": [f"Use one of {', '.join(PSS_VERSION_CHOICES)}."]})
    entry = library_entry(policy.name, version) if policy.bundled else None
    if entry is None or not is_versioned(entry):
        raise ValidationError({"pss_version": [PIN_REFUSED]})
    return list(entry["rules"])


def _save_rules(policy: Policy, rules: list[PolicyRule]) -> None:
    policy.rules.all().delete()
    for rule in rules:
        rule.policy = policy
    PolicyRule.objects.bulk_create(rules)


def _evaluate_soon(policy: Policy) -> None:
    """After the commit, queue an evaluation of just this policy on its clusters instead
    of waiting for the next sweep (the other policies' results stay as they are)."""
    if not policy.enabled:
        return

    def send() -> None:
        ids = list(
            policy_clusters(policy=policy)
            .filter(mode=ClusterMode.PUSH)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        try:
            for start in range(0, len(ids), BATCH_SIZE):
                task_send(
                    EVALUATE_TASK,
                    args=[ids[start : start + BATCH_SIZE], [policy.pk]],
                    expires=EVALUATE_INTERVAL,
                )
        except Exception:  # the broker is down: the next sweep evaluates it anyway
            logger.warning("could not queue the evaluation of policy %s", policy.pk, exc_info=True)

    transaction.on_commit(send)


@transaction.atomic
def policy_create(
    *, team: Team, spec: PolicySpec, actor: AbstractBaseUser | None, bundled: bool = False
) -> Policy:
    if spec.mode == Mode.ENFORCE:
        _authorize_enforce(team, actor)
    rules = build_rules(spec.rules)
    sets = _validate(team, spec)
    if spec.pss_version != LATEST:
        raise ValidationError({"pss_version": [PIN_REFUSED]})
    if Policy.objects.filter(team=team, name=spec.name).exists():
        raise ValidationError({"name": [f"The team already has a policy named {spec.name}."]})
    policy = Policy.objects.create(
        team=team,
        name=spec.name,
        description=spec.description,
        severity=spec.severity,
        standards=spec.standards,
        cluster_selector=spec.cluster_selector,
        placement=spec.placement,
        mode=spec.mode,
        enabled=spec.enabled,
        bundled=bundled,
        created_by_id=actor.pk if actor is not None else None,
        enforced_by_id=actor.pk if actor is not None and spec.mode == Mode.ENFORCE else None,
    )
    policy.cluster_sets.set(sets)
    _save_rules(policy, rules)
    audit_record(
        actor=actor, action="policy.create", target=policy, team=team, detail={"name": spec.name}
    )
    _evaluate_soon(policy)
    return policy


@transaction.atomic
def policy_update(*, policy: Policy, spec: PolicySpec, actor: AbstractBaseUser | None) -> Policy:
    """Replace what the policy checks; the generation grows when anything changed.
    Leaving (or putting) the policy in enforce mode needs the enforce role: an operator
    may switch an enforcing policy back to inform, not change what it enforces."""
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    refuse_external(policy)
    before = PolicySpec.of(policy)
    if spec.pss_version != before.pss_version:
        spec.rules = _rules_at(policy, spec.pss_version)
    rules = build_rules(spec.rules)
    sets = _validate(policy.team, spec)
    if spec.name != policy.name:
        raise ValidationError({"name": ["A policy cannot be renamed."]})
    spec.rules = [rule_as_json(rule) for rule in rules]
    if spec == before:
        return policy
    if spec.mode == Mode.ENFORCE:
        _authorize_enforce(policy.team, actor)
    for name in (
        "description",
        "severity",
        "standards",
        "cluster_selector",
        "placement",
        "mode",
        "enabled",
        "pss_version",
    ):
        setattr(policy, name, getattr(spec, name))
    # Who the sweep's enforcement acts for: the last user who set or changed enforcement.
    if spec.mode != Mode.ENFORCE:
        policy.enforced_by_id = None
    elif actor is not None:
        policy.enforced_by_id = actor.pk
    policy.generation += 1
    policy.save()
    policy.cluster_sets.set(sets)
    _save_rules(policy, rules)
    changed = [k for k in spec.__dict__ if getattr(spec, k) != getattr(before, k)]
    audit_record(
        actor=actor,
        action="policy.update",
        target=policy,
        team=policy.team,
        detail={"name": policy.name, "changed": changed, "generation": policy.generation},
    )
    _evaluate_soon(policy)
    return policy


@transaction.atomic
def policy_delete(*, policy: Policy, actor: AbstractBaseUser | None) -> None:
    refuse_external(policy)
    audit_record(
        actor=actor,
        action="policy.delete",
        target=policy,
        team=policy.team,
        detail={"name": policy.name},
    )
    # Kept, disabled, with its history: a deleted policy is no longer evaluated or listed,
    # and its name is free again, but every result it produced stays.
    Policy.all_objects.filter(pk=policy.pk).update(
        deleted_at=timezone.now(), enabled=False, updated_at=timezone.now()
    )
