"""Alert rules: create, change and delete, validated, saved and audited in one call (the
pages and the API call these), and the default rules every team starts with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Team, slug_validator
from alerts.choices import AlertState, RuleKind, Severity
from alerts.matchers import LABEL_NAME
from alerts.models import Alert, AlertGroup, AlertRule
from alerts.params import DEFAULT_RULES, ParamsError, clean_params, default_group_by
from alerts.services.lifecycle import groups_mark_due
from audit.services import audit_record
from clusters.labels import LabelSelector
from clusters.models import ClusterSet

MAX_WAIT = 3600
MAX_INTERVAL = 24 * 3600
MAX_REPEAT = 7 * 24 * 3600


@dataclass
class RuleSpec:
    """What a rule says; None for a change leaves the field as it is."""

    name: str | None = None
    kind: str | None = None
    params: dict[str, Any] | None = None
    severity: str | None = None
    description: str | None = None
    cluster_set: str | None = None  # a name of the team's cluster sets; "" for none
    selector: str | None = None
    group_by: list[str] | None = None
    group_wait: int | None = None
    group_interval: int | None = None
    repeat_interval: int | None = None
    enabled: bool | None = None
    changed: list[str] = field(default_factory=list)


def _seconds(errors: dict[str, str], name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[name] = f"Seconds from {low} to {high}."


def _apply(rule: AlertRule, spec: RuleSpec) -> None:
    """Copy `spec` onto `rule` and check everything; ValidationError by field."""
    errors: dict[str, Any] = {}
    for name in ("name", "severity", "description", "selector", "enabled"):
        value = getattr(spec, name)
        if value is not None:
            setattr(rule, name, value.strip() if isinstance(value, str) else value)
    if spec.kind is not None and spec.kind != rule.kind:
        if rule.pk is not None:
            errors["kind"] = "A rule's kind cannot change; create another rule."
        rule.kind = spec.kind
    if rule.kind not in RuleKind.values:
        errors["kind"] = "One of " + ", ".join(RuleKind.values) + "."
    elif spec.params is not None or rule.pk is None:
        try:
            rule.params = clean_params(rule.kind, spec.params if spec.params is not None else {})
        except ParamsError as error:
            errors["params"] = [f"{k}: {v}" for k, v in error.errors.items()]
    if rule.severity not in Severity.values:
        errors["severity"] = "One of " + ", ".join(Severity.values) + "."
    try:
        slug_validator(rule.name)
    except ValidationError:
        errors["name"] = "Lowercase letters, digits and dashes, starting with a letter."
    if AlertRule.objects.filter(team_id=rule.team_id, name=rule.name).exclude(pk=rule.pk).exists():
        errors["name"] = "The team already has a rule with this name."
    if spec.cluster_set is not None:
        found = ClusterSet.objects.filter(team_id=rule.team_id, name=spec.cluster_set).first()
        if spec.cluster_set and found is None:
            errors["cluster_set"] = "No such cluster set in the team."
        rule.cluster_set = found
    if rule.selector:
        try:
            LabelSelector.parse(rule.selector)
        except ValidationError as error:
            errors["selector"] = error.messages
    if spec.group_by is not None:
        bad = not isinstance(spec.group_by, list) or len(spec.group_by) > 10
        if bad or not all(isinstance(n, str) and LABEL_NAME.fullmatch(n) for n in spec.group_by):
            errors["group_by"] = "A list of up to 10 label names (e.g. region)."
        else:
            rule.group_by = sorted(set(spec.group_by))
    elif rule.pk is None:
        rule.group_by = default_group_by(rule.kind)
    for name, low, high in (
        ("group_wait", 0, MAX_WAIT),
        ("group_interval", 1, MAX_INTERVAL),
        ("repeat_interval", 60, MAX_REPEAT),
    ):
        value = getattr(spec, name)
        if value is not None:
            _seconds(errors, name, value, low, high)
            setattr(rule, name, value)
    if errors:
        raise ValidationError(errors)


def _detail(rule: AlertRule) -> dict[str, Any]:
    return {
        "kind": rule.kind,
        "params": rule.params,
        "severity": rule.severity,
        "cluster_set": rule.cluster_set.name if rule.cluster_set else "",
        "selector": rule.selector,
        "enabled": rule.enabled,
    }


@transaction.atomic
def alert_rule_create(*, actor: AbstractBaseUser | None, team: Team, spec: RuleSpec) -> AlertRule:
    """The caller checked that `actor` administers `team`."""
    rule = AlertRule(team=team, kind=spec.kind or "", name=spec.name or "")
    _apply(rule, spec)
    rule.save()
    audit_record(
        actor=actor, action="alert_rule.create", target=rule, team=team, detail=_detail(rule)
    )
    return rule


@transaction.atomic
def alert_rule_update(*, actor: AbstractBaseUser, rule: AlertRule, spec: RuleSpec) -> AlertRule:
    """Change a rule. Its firing alerts stay; the next evaluation resolves those the
    changed rule no longer finds. Disabling it resolves them at once."""
    locked = AlertRule.objects.select_for_update().get(pk=rule.pk)
    _apply(locked, spec)
    locked.save()
    if not locked.enabled:
        _resolve_all(locked)
    audit_record(
        actor=actor,
        action="alert_rule.update",
        target=locked,
        team=locked.team,
        detail=_detail(locked),
    )
    return locked


def _resolve_all(rule: AlertRule) -> None:
    """A disabled rule's alerts resolve now; their groups tell the resolution."""
    now = timezone.now()
    firing = Alert.objects.filter(rule=rule, state=AlertState.FIRING)
    groups = set(firing.values_list("group_id", flat=True))
    firing.update(state=AlertState.RESOLVED, ends_at=now)
    groups_mark_due(AlertGroup.objects.filter(pk__in=groups), rule, now)


@transaction.atomic
def alert_rule_delete(*, actor: AbstractBaseUser, rule: AlertRule) -> None:
    """Deleting a rule deletes its alerts' history too (it would name a rule that is gone)."""
    audit_record(actor=actor, action="alert_rule.delete", target=rule, team=rule.team)
    rule.delete()


def alert_rules_default(*, team: Team) -> list[AlertRule]:
    """Give `team` the default rules it does not have yet (by name)."""
    have = set(AlertRule.objects.filter(team=team).values_list("name", flat=True))
    rules = []
    for name, kind, params, severity, description in DEFAULT_RULES:
        if name in have:
            continue
        spec = RuleSpec(
            name=name, kind=kind, params=dict(params), severity=severity, description=description
        )
        rules.append(alert_rule_create(actor=None, team=team, spec=spec))
    return rules
