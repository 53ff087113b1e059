"""Enforcement: make a cluster meet a policy's object templates.

Must-have and must-only-have objects are written by server-side apply (field manager
`keelson`, labelled with the owning policy); must-not-have objects are deleted. Object
and cluster rules report only: there is nothing a template says to write for them. The
impact preview computes the same plan from the same read and touches nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q

from audit.services import audit_record
from clusters.models import Cluster
from clusters.services.credentials import cluster_api_client
from kube.apply import apply_manifest
from kube.client import ClusterConnectError
from policies import cel, celcost
from policies.choices import ActionKind, ActionStatus, Mode, ResultStatus, RuleKind
from policies.engine import Fix, judge
from policies.kube import ClusterReader
from policies.models import EnforcementAction, Policy, PolicyClusterMode, PolicyEvaluation
from policies.services.cluster_modes import (
    cluster_mode_overrides,
    enforcement_actor,
    mode_with,
)
from policies.services.evaluation import (
    cluster_evaluate,
    cluster_reader,
    policy_clusters,
    read_cluster,
)

POLICY_LABEL = "keelson.io/policy"
POLICY_TEAM_LABEL = "keelson.io/policy-team"


def owner_labels(policy: Policy) -> dict[str, str]:
    return {POLICY_LABEL: policy.name, POLICY_TEAM_LABEL: policy.team.name}


@dataclass
class ClusterPlan:
    cluster: str
    fixes: list[Fix] = field(default_factory=list)
    unfixable: int = 0  # violations of object/cluster rules: reported, not remediated
    error: str = ""
    done: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "actions": [fix.as_json() for fix in self.fixes],
            "unfixable_violations": self.unfixable,
            "error": self.error,
            **({"done": self.done} if self.done else {}),
        }


def _plan(policy: Policy, cluster: Cluster) -> tuple[ClusterPlan, ClusterReader | None]:
    plan = ClusterPlan(cluster=cluster.name)
    try:
        reader = cluster_reader(cluster, cluster_api_client(cluster=cluster))
        read = read_cluster(reader, cluster, [policy])
    except ClusterConnectError as error:
        plan.error = error.message
        return plan, None
    if read.failed:
        plan.error = next(iter(read.failed.values()))
        return plan, None
    rules = list(policy.rules.all())
    judgement = judge(rules, read.snapshot)
    plan.fixes = judgement.fixes
    templates = {r.name for r in rules if r.kind == RuleKind.TEMPLATE}
    plan.unfixable = sum(1 for v in judgement.violations if v["rule"] not in templates)
    return plan, reader


def enforcement_preview(*, policy: Policy) -> list[ClusterPlan]:
    """What enforcing `policy` now would do on each targeted cluster (nothing is changed
    and nothing is stored). Asked from a web request: CEL runs within its budget."""
    with cel.budget(celcost.REQUEST_BUDGET):
        return [_plan(policy, cluster)[0] for cluster in policy_clusters(policy=policy)]


def _execute(policy: Policy, reader: ClusterReader, fix: Fix) -> tuple[ActionStatus, str]:
    try:
        if fix.action == ActionKind.APPLY:
            assert fix.manifest is not None
            apply_manifest(reader.api, fix.manifest, owner_labels=owner_labels(policy))
            return ActionStatus.SUCCEEDED, f"applied ({fix.reason})"
        gone = reader.delete(fix.api_version, fix.kind, fix.name, fix.namespace)
        return ActionStatus.SUCCEEDED, "deleted" if gone else "already gone"
    except ClusterConnectError as error:
        return ActionStatus.FAILED, error.message


def policy_enforce(
    *,
    policy: Policy,
    actor: AbstractBaseUser | None,
    clusters: list[Cluster] | None = None,
    trigger: str = "manual",
) -> list[ClusterPlan]:
    """Apply the plan on every targeted cluster and record each action with its object and
    the user it was done for (`actor`); `trigger` says how it started (manual, sweep)."""
    run_id = uuid.uuid4()
    plans: list[ClusterPlan] = []
    for cluster in clusters if clusters is not None else policy_clusters(policy=policy):
        plan, reader = _plan(policy, cluster)
        plans.append(plan)
        if reader is None:
            continue
        actions: list[EnforcementAction] = []
        for fix in plan.fixes:
            status, message = _execute(policy, reader, fix)
            plan.done.append({**fix.target(), "action": str(fix.action), "status": str(status)})
            actions.append(
                EnforcementAction(
                    policy=policy,
                    cluster=cluster,
                    rule_name=fix.rule,
                    run_id=run_id,
                    action=fix.action,
                    status=status,
                    target=fix.target(),
                    message=message[:1000],
                    actor_id=actor.pk if actor is not None else None,
                )
            )
        with transaction.atomic():
            EnforcementAction.objects.bulk_create(actions)
            if actions:
                audit_record(
                    actor=actor,
                    action="policy.enforce",
                    target=policy,
                    team=policy.team,
                    detail={
                        "cluster": cluster.name,
                        "trigger": trigger,
                        "objects": [a.target for a in actions],
                    },
                )
    return plans


def clusters_enforce(*, cluster_ids: list[int]) -> int:
    """The sweep's second step: policies enforcing on a cluster (their effective mode
    there: `cluster_modes`) whose newest result on it is noncompliant are remediated
    there, then re-evaluated so the result shows the fix. Returns the number of actions
    taken."""
    enforcing_somewhere = Q(policy__mode=Mode.ENFORCE) | Q(
        policy_id__in=PolicyClusterMode.objects.filter(
            cluster_id__in=cluster_ids, mode=Mode.ENFORCE
        ).values("policy_id")
    )
    newest = (
        PolicyEvaluation.objects.filter(cluster_id__in=cluster_ids, policy__enabled=True)
        .filter(enforcing_somewhere)
        .order_by("policy_id", "cluster_id", "-evaluated_at", "-id")
        .distinct("policy_id", "cluster_id")
        .values_list("policy_id", "cluster_id", "status")
    )
    noncompliant = [
        (policy, cluster)
        for policy, cluster, status in newest
        if status == ResultStatus.NONCOMPLIANT
    ]
    if not noncompliant:
        return 0
    policies = Policy.objects.select_related("team", "enforced_by").in_bulk(
        {p for p, _ in noncompliant}
    )
    overrides = cluster_mode_overrides(list(policies), {c for _, c in noncompliant})
    due = [
        (policy_id, cluster_id)
        for policy_id, cluster_id in noncompliant
        if mode_with(policies[policy_id], overrides.get((policy_id, cluster_id))) == Mode.ENFORCE
    ]
    clusters = Cluster.objects.select_related("team").in_bulk({c for _, c in due})
    taken = 0
    for policy_id, cluster_id in due:
        cluster = clusters[cluster_id]
        policy = policies[policy_id]
        # Done for the user who set enforcement on (the audit and each action say so).
        actor = enforcement_actor(policy, overrides.get((policy_id, cluster_id)))
        plans = policy_enforce(policy=policy, actor=actor, clusters=[cluster], trigger="sweep")
        done = sum(len(plan.done) for plan in plans)
        if done:
            taken += done
            cluster_evaluate(cluster=cluster, policy_ids=[policy_id], force=True)
    return taken
