"""Loading the bundled library into a team: idempotent, updating what changed.

A bundled Pod Security Standards policy pinned to a standard version (`pss_version`)
gets the library's rules read at that version, so an upgrade changes its verdicts only
where the library's reading of that same version was wrong.

Bundled policies keep the team's own choices (mode, enabled, targeting) across updates;
what they check (rules, description, severity, standards) follows the library, and the
generation grows only when that changed. Model classes can be passed in so the data
migration runs this same code against its historical models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from policies.library import LATEST, library, library_entry
from policies.models import Policy, PolicyRule
from policies.services.policies import RULE_FIELDS, build_rules


@dataclass
class LoadCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # a team's own policy holds the name


def _rules_json(rules: list[Any]) -> list[dict[str, Any]]:
    return [{name: getattr(rule, name) for name in RULE_FIELDS} for rule in rules]


@transaction.atomic
def library_load(
    *,
    team: Any,
    policy_model: Any = Policy,
    rule_model: Any = PolicyRule,
) -> LoadCounts:
    counts = LoadCounts()
    for entry in library():
        rules = build_rules(entry["rules"])  # the library is validated like any input
        wanted_rules = _rules_json(rules)
        fields = {
            "description": entry.get("description", ""),
            "severity": entry.get("severity", "medium"),
            "standards": list(entry.get("standards", [])),
        }
        policy = (
            policy_model.objects.select_for_update()
            .filter(team_id=team.pk, name=entry["name"])
            .first()
        )
        if policy is None:
            policy = policy_model.objects.create(
                team_id=team.pk, name=entry["name"], bundled=True, **fields
            )
            counts.created += 1
        elif not policy.bundled:
            counts.skipped += 1
            continue
        else:
            # A policy pinned to a standard version keeps checking that version.
            pinned = getattr(policy, "pss_version", LATEST)
            if pinned != LATEST:
                entry = library_entry(entry["name"], pinned) or entry
                wanted_rules = _rules_json(build_rules(entry["rules"]))
            current = _rules_json(
                list(rule_model.objects.filter(policy=policy).order_by("position"))
            )
            if current == wanted_rules and all(getattr(policy, k) == v for k, v in fields.items()):
                counts.unchanged += 1
                continue
            for name, value in fields.items():
                setattr(policy, name, value)
            policy.generation += 1
            policy.bundled = True
            policy.save()
            counts.updated += 1
        rule_model.objects.filter(policy=policy).delete()
        rule_model.objects.bulk_create(
            [
                rule_model(policy=policy, position=position, **data)
                for position, data in enumerate(wanted_rules, start=1)
            ]
        )
    return counts
