"""Enforce-mode object rules where Keelson controls the write: the pre-apply check of
applications Keelson propagates (registered in `applications.admission` from
PoliciesConfig.ready()).

Before an application's rendered objects are applied to a cluster (or handed to its
agent), every enabled policy targeting that cluster and enforcing there (its mode on
that cluster: `cluster_modes`) judges them with its object rules, as it would judge them
in the cluster; a violation refuses the write, and
so does an object a rule cannot judge (fail closed). Object templates and cluster rules
are not about the objects being written: enforce mode applies templates, and cluster
rules only report. Objects that reach a cluster any other way (kubectl, another tool)
are reported by evaluation, not blocked: Keelson is not in their path.
"""

from __future__ import annotations

from typing import Any

from applications.admission import Refusal
from clusters.models import Cluster
from policies import cel, celcost
from policies.choices import RuleKind
from policies.engine import Snapshot, judge
from policies.models import Policy
from policies.objects import group_of
from policies.services.cluster_modes import enforcing_on
from policies.services.evaluation.targeting import applicable
from policies.services.evaluation.versions import pss_pins, rules_at

CHECKER_NAME = "policies"


def enforcing_policies(cluster: Cluster) -> list[Policy]:
    """The enabled policies with object rules that target `cluster` and enforce there
    (their effective mode: `cluster_modes`); one query when the team has none."""
    ids = list(
        Policy.objects.filter(team_id=cluster.team_id, enabled=True, rules__kind=RuleKind.OBJECT)
        .filter(enforcing_on(cluster.pk))
        .values_list("pk", flat=True)
        .distinct()
    )
    if not ids:
        return []
    return applicable([cluster], ids)[cluster.pk]


def policy_refusals(cluster: Cluster, objects: list[dict[str, Any]]) -> list[Refusal]:
    """What the enforce-mode object rules targeting `cluster` refuse among `objects`."""
    policies = enforcing_policies(cluster)
    if not policies:
        return []
    listed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for obj in objects:
        key = (group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
        listed.setdefault(key, []).append(obj)
    snapshot = Snapshot(objects=listed, namespaced={}, cluster={})
    pinned = pss_pins([cluster]).get(cluster.pk)
    refusals: list[Refusal] = []
    # Bounded as in a web request (an agent's pull is one): past the budget an object
    # cannot be judged, which refuses it.
    with cel.budget(celcost.REQUEST_BUDGET):
        for policy in policies:
            refusals += _refusals(policy, pinned, snapshot)
    return refusals


def _refusals(policy: Policy, pinned: str | None, snapshot: Snapshot) -> list[Refusal]:
    """What one policy's object rules refuse (violations, and objects they cannot judge)."""
    refusals: list[Refusal] = []
    rules = [
        rule
        for rule in rules_at(policy, pinned, list(policy.rules.all()))
        if rule.kind == RuleKind.OBJECT
    ]
    judgement = judge(rules, snapshot)
    for found, prefix in [
        (judgement.violations, ""),
        (judgement.errors, "could not be judged: "),
    ]:
        refusals += [
            Refusal(
                source=f"policy {policy.name}, rule {item['rule']}",
                kind=item["kind"],
                namespace=item["namespace"],
                name=item["name"],
                message=prefix + item["message"],
            )
            for item in found
        ]
    return refusals
