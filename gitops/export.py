"""A team's current state as a GitOps repository: the same keelson.io/v1 documents a
sync reads (gitops.documents), one file per object in a folder per kind, so that the
repository made from it plans "unchanged" against the team it came from.

What is exported: every Application (its Placement in its own document), ClusterSet and
Keelson policy of the team. Not exported, each listed with its reason: external policies
(another engine's results), bundled library policies the team left as the library loads
them, applications being deleted, and rate cards, budgets and report definitions (no
document kind for them yet)."""

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
from gitops.state import application_state, cluster_set_state, policy_state
from policies.choices import Mode
from policies.library import LATEST
from policies.models import Policy, ReportDefinition

FOLDERS = {
    "ClusterSet": "clustersets",
    "Application": "applications",
    "Placement": "placements",
    "Policy": "policies",
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
        placement = state.pop("placement")
        spec = _non_empty(state, keep=("namespace", "manifests"))
        out.append(
            ("Application", application.name, document("Application", application.name, spec))
        )
        if placement:
            out.append(
                ("Placement", application.name, document("Placement", application.name, placement))
            )
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
    result.skipped += _without_kind(team)
    for kind, _name, _text in out:
        result.counts[kind] += 1
    return out, result


def _without_kind(team: Team) -> list[str]:
    """The team's objects of kinds the issue plans for but a repository cannot declare yet
    (gitops.documents.KINDS has none for them)."""
    lines = []
    rate_cards = RateCard.objects.filter(team=team).values_list("name", flat=True)
    for name in sorted(set(rate_cards)):
        lines.append(f"RateCard {name}: no document kind for it yet")
    for name in Budget.objects.filter(team=team).order_by("name").values_list("name", flat=True):
        lines.append(f"Budget {name}: no document kind for it yet")
    reports = ReportDefinition.objects.filter(team=team).order_by("name")
    for name in reports.values_list("name", flat=True):
        lines.append(f"ReportDefinition {name}: no document kind for it yet")
    return lines


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
