"""What a plan would do to the fleet, beyond the field diff (issue 23's preview): for an
application, the clusters the placement simulator would add or remove and the replicas
moved, and the cost change per month at current prices; for a policy, the clusters and
objects that would become non-compliant (gitops.policy_preview). Read-only: nothing is
stored or applied."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import Team
from applications.manifests import ManifestError, parse_manifests, requests_of
from applications.models import Application
from applications.services import placement_simulate
from clusters.models import Cluster
from costs.services import cluster_unit_prices
from gitops.documents import Desired
from gitops.plan import Action
from gitops.policy_preview import policy_impact
from gitops.rollouts import needs_rollout

HOURS_PER_MONTH = Decimal(730)
GB = Decimal(1000**3)


def _placed(chosen: list[dict[str, Any]]) -> dict[str, int | None]:
    """{cluster: replicas} of a decision's chosen clusters (None: the manifests' own)."""
    return {c["cluster"]: c.get("replicas") for c in chosen}


def monthly_cost(
    manifests: str,
    where: Mapping[str, int | None],
    prices: Mapping[str, Mapping[str, Decimal] | None],
) -> Decimal:
    """What the workloads' requests cost per month on those clusters at their prices."""
    try:
        objects = parse_manifests(manifests) if manifests else []
    except ManifestError:
        return Decimal(0)
    total = Decimal(0)
    for cluster, replicas in where.items():
        price = prices.get(cluster)
        if not price:
            continue
        need = requests_of(objects, replicas=replicas)
        hourly = need.cpu * price["cpu_core_hour"] + need.memory_bytes / GB * price["ram_gb_hour"]
        total += hourly * HOURS_PER_MONTH
    return total


def _prices(team: Team, names: set[str]) -> dict[str, dict[str, Decimal] | None]:
    return {
        cluster.name: cluster_unit_prices(cluster)
        for cluster in Cluster.objects.filter(team=team, name__in=sorted(names))
    }


def application_impact(team: Team, name: str, item: Desired | None) -> dict[str, Any]:
    """The clusters the application would run on after the change (`item` None: pruned),
    those added and removed, replicas moved, and the cost change per month."""
    existing = Application.objects.filter(team=team, name=name).select_related("placement").first()
    before: dict[str, int | None] = {}
    old_manifests = ""
    if existing is not None:
        last = existing.decisions.values_list("decision", flat=True).first()
        before = _placed((last or {}).get("chosen") or [])
        old_manifests = existing.versions.values_list("manifests", flat=True).first() or ""
    after: dict[str, int | None] = {}
    warnings: list[str] = []
    new_manifests = ""
    if item is not None:
        subject = existing or Application(team=team, name=name)
        try:
            decision = placement_simulate(application=subject, spec=item.state["placement"])
        except ValidationError as error:
            return {"error": " ".join(error.messages)}
        after = _placed(decision.chosen)
        warnings = list(decision.warnings)
        new_manifests = item.state["manifests"]
    prices = _prices(team, set(before) | set(after))
    unpriced = sorted(c for c in set(before) | set(after) if not prices.get(c))
    change = monthly_cost(new_manifests, after, prices) - monthly_cost(
        old_manifests, before, prices
    )
    return {
        "clusters": sorted(after),
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "replicas_moved": {
            cluster: {"old": before.get(cluster), "new": after.get(cluster)}
            for cluster in sorted(set(before) & set(after))
            if before[cluster] != after[cluster]
        },
        "warnings": warnings,
        "cost_per_month": str(change.quantize(Decimal("0.01"))),
        "cost_unpriced": unpriced,
    }


def enrich(plan: list[dict[str, Any]], desired: list[Desired], team: Team) -> None:
    """Add `placement` to each application change that would roll out or prune, and
    `compliance` to each policy created or changed (in place)."""
    by_key = {(d.kind, d.name): d for d in desired}
    for change in plan:
        item = by_key.get((change["kind"], change["name"]))
        if change["kind"] == "Application":
            if needs_rollout(change) or change["action"] == Action.PRUNE:
                change["placement"] = application_impact(team, change["name"], item)
        elif change["kind"] == "Policy" and item is not None and change["action"] != "unchanged":
            change["compliance"] = policy_impact(team, change["name"], item)
