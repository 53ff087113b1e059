"""A team's current state as a GitOps repository: the same keelson.io/v1 documents a
sync reads (gitops.documents), one file per object in a folder per kind, so that the
repository made from it plans "unchanged" against the team it came from.

What is exported: every Application (its Placement, Overrides and RolloutStrategy each in
a document of its own), ClusterSet, Keelson policy, rate card (every version), budget and
report definition of the team. Not exported, each listed with its reason: external
policies (another engine's results), bundled library policies the team left as the
library loads them, and applications being deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from accounts.models import Team
from applications.models import Application
from clusters.models import ClusterSet
from costs.models import Budget, RateCard
from gitops.documents import API_VERSION
from gitops.kinds import budget_state, rate_card_states, report_definition_state
from gitops.parts import PARTS
from gitops.state import application_state, cluster_set_state, policy_state
from policies.choices import Mode
from policies.library import LATEST
from policies.models import Policy, ReportDefinition

FOLDERS = {
    "ClusterSet": "clustersets",
    "Application": "applications",
    "Placement": "placements",
    "Overrides": "overrides",
    "RolloutStrategy": "rolloutstrategies",
    "Policy": "policies",
    "RateCard": "ratecards",
    "Budget": "budgets",
    "ReportDefinition": "reportdefinitions",
}


@dataclass
class ExportResult:
    """Files written (relative paths), objects per kind, and what was left out, why."""

    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (manifests, CEL) as literal blocks, readable in a diff."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)


def document(kind: str, name: str, spec: dict[str, Any]) -> str:
    """One keelson.io/v1 document as YAML text."""
    data = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _non_empty(state: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k in keep or v not in ("", [], {}, None)}


def _bundled_as_loaded(policy: Policy) -> bool:
    """A bundled policy whose team choices are still the library's defaults: the library
    recreates it, so a repository need not hold it."""
    return (
        policy.mode == Mode.INFORM
        and policy.enabled
        and not policy.cluster_selector
        and not policy.placement
        and not policy.cluster_sets.exists()
    )


def team_documents(team: Team) -> tuple[list[tuple[str, str, str]], ExportResult]:
    """[(kind, name, YAML text)] of every exportable object of `team`, and what was not."""
    result = ExportResult(counts={kind: 0 for kind in FOLDERS})
    out: list[tuple[str, str, str]] = []
    sets = ClusterSet.objects.filter(team=team).prefetch_related("members")
    for cluster_set in sets.order_by("name"):
        spec = _non_empty(cluster_set_state(cluster_set))
        out.append(("ClusterSet", cluster_set.name, document("ClusterSet", cluster_set.name, spec)))
    applications = Application.objects.filter(team=team).select_related("placement")
    for application in applications.order_by("name"):
        if (application.managed_by or {}).get("pruning"):
            result.skipped.append(f"Application {application.name}: being deleted")
            continue
        if not application.versions.exists():
            result.skipped.append(f"Application {application.name}: has no manifests version")
            continue
        state = application_state(application)
        parts = {kind: state.pop(field) for kind, field in PARTS.items()}
        spec = _non_empty(state, keep=("namespace", "manifests"))
        out.append(
            ("Application", application.name, document("Application", application.name, spec))
        )
        out += _parts(application.name, parts)
    policies = Policy.objects.filter(team=team).prefetch_related("rules", "cluster_sets")
    for policy in policies.order_by("name"):
        if policy.external:
            result.skipped.append(
                f"Policy {policy.name}: external ({policy.source_engine}); its engine owns it"
            )
            continue
        if policy.bundled and _bundled_as_loaded(policy):
            result.skipped.append(f"Policy {policy.name}: bundled library policy, unchanged")
            continue
        if policy.bundled and policy.pss_version != LATEST:
            result.notes.append(
                f"Policy {policy.name}: pinned to Pod Security Standards {policy.pss_version}; "
                "a repository cannot declare the pin (exported with the rules it checks now)"
            )
        spec = _non_empty(policy_state(policy), keep=("severity", "mode", "enabled", "rules"))
        out.append(("Policy", policy.name, document("Policy", policy.name, spec)))
    out += _cost_and_report_documents(team)
    for kind, _name, _text in out:
        result.counts[kind] += 1
    return out, result


def _parts(name: str, parts: dict[str, Any]) -> list[tuple[str, str, str]]:
    """An application's placement, overrides and rollout strategy, each set one in its own
    document."""
    out = []
    if parts["Placement"]:
        out.append(("Placement", name, document("Placement", name, parts["Placement"])))
    if parts["Overrides"]:
        spec = {"application": name, "overrides": parts["Overrides"]}
        out.append(("Overrides", name, document("Overrides", name, spec)))
    if parts["RolloutStrategy"]:
        spec = {"application": name, **parts["RolloutStrategy"]}
        out.append(("RolloutStrategy", name, document("RolloutStrategy", name, spec)))
    return out


def _cost_and_report_documents(team: Team) -> list[tuple[str, str, str]]:
    out = []
    for name, state in rate_card_states(RateCard.objects.filter(team=team)).items():
        out.append(("RateCard", name, document("RateCard", name, state)))
    budgets = Budget.objects.filter(team=team).select_related("cluster_set").order_by("name")
    for budget in budgets:
        spec = _non_empty(budget_state(budget))
        out.append(("Budget", budget.name, document("Budget", budget.name, spec)))
    for definition in ReportDefinition.objects.filter(team=team).order_by("name"):
        spec = report_definition_state(definition)
        out.append(
            (
                "ReportDefinition",
                definition.name,
                document("ReportDefinition", definition.name, spec),
            )
        )
    return out


def _writable(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output} exists and is not a folder")
    if output.is_dir() and any(not p.name.startswith(".") for p in output.iterdir()):
        raise ValueError(f"{output} is not empty (a fresh folder or a fresh git clone only)")


def fleet_export(
    *, team: Team, output: Path, progress: Callable[[str], None] = lambda line: None
) -> ExportResult:
    """Write `team`'s objects under `output` (missing, empty, or holding only hidden
    entries such as .git); ValueError before anything is written otherwise."""
    _writable(output)
    documents, result = team_documents(team)
    total = len(documents)
    for done, (kind, name, text) in enumerate(documents, start=1):
        relative = f"{FOLDERS[kind]}/{name}.yaml"
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        result.files.append(relative)
        if done == total or done % 50 == 0:
            progress(f"{done}/{total} documents written")
    return result
