"""Policies on pull-mode clusters: the hub cannot reach them, so their agent evaluates.

The agent fetches the enabled policies targeting its cluster (`agent_policies`: rules,
generation, its mode on this cluster, the cluster as cluster rules see it), reads its
cluster and judges them with the same engine (`policies.engine`,
`ClusterReader.list_kinds`), and reports one judgement per policy.
`agent_policies_report` turns each into the outcome the hub would have computed
(`outcomes.judged_row`: the same status, message and digest) and stores it exactly as a
push cluster's result (`store`), so pages, reports and the API cannot tell the two
apart. Enforce-mode template fixes run on the agent with the same server-side apply; the
actions it took are stored and audited here as the hub's own enforcement is.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from clusters.models import Cluster
from policies.choices import ActionKind, ActionStatus, Mode
from policies.models import EnforcementAction, Policy
from policies.services.cluster_modes import (
    cluster_mode_overrides,
    effective_modes,
    enforcement_actor,
    mode_with,
)
from policies.services.enforcement import owner_labels
from policies.services.evaluation.outcomes import MAX_LISTED, Outcome, judged_row, outcome
from policies.services.evaluation.reading import cluster_facts
from policies.services.evaluation.store import inventory_stamps, last_results, store
from policies.services.evaluation.sweep import EVALUATE_INTERVAL, agent_evaluate_key
from policies.services.evaluation.targeting import applicable

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


def _version(cluster: Cluster) -> dict[str, Any]:
    match = re.match(r"v?(\d+)\.(\d+)", cluster.kubernetes_version or "")
    if not match:
        return {}  # the agent asks its cluster
    major, minor = match.groups()
    return {"major": major, "minor": minor, "gitVersion": cluster.kubernetes_version}


def agent_policies(*, cluster: Cluster) -> dict[str, Any]:
    """What a pull cluster's agent evaluates: each enabled policy targeting the cluster
    with its rules and generation, and the cluster's facts for cluster rules."""
    policies = applicable([cluster], None).get(cluster.pk, [])
    modes = effective_modes(policies, [cluster.pk])
    evaluate_now = bool(cache.get(agent_evaluate_key(cluster.pk)))
    if evaluate_now:
        cache.delete(agent_evaluate_key(cluster.pk))
    return {
        "cluster": cluster_facts(cluster, _version(cluster)),
        "evaluate_interval": EVALUATE_INTERVAL,
        "evaluate_now": evaluate_now,
        "max_listed": MAX_LISTED,
        "policies": [
            {
                "id": policy.pk,
                "name": policy.name,
                "generation": policy.generation,
                "mode": modes[(policy.pk, cluster.pk)],  # its mode on this cluster
                "owner_labels": owner_labels(policy),
                "rules": [
                    {name: getattr(rule, name) for name in RULE_FIELDS}
                    for rule in policy.rules.all()
                ],
            }
            for policy in policies
        ],
    }


def _reported(
    policy: Policy, cluster: Cluster, run_id: uuid.UUID, stamp: str, report: dict[str, Any]
) -> Outcome:
    if report.get("error"):
        return outcome(policy, cluster, run_id, stamp, False, error=str(report["error"]))
    now = timezone.now()
    row = Outcome(policy, cluster, run_id, policy.generation, stamp, False, now, now)
    violations = list(report.get("violations") or [])
    errors = list(report.get("errors") or [])
    return judged_row(
        row,
        checked=int(report.get("checked", 0)),
        violations=violations,
        errors=errors,
        violations_total=max(int(report.get("violations_total", 0)), len(violations)),
        errors_total=max(int(report.get("errors_total", 0)), len(errors)),
    )


def agent_policies_report(
    *,
    cluster: Cluster,
    results: list[dict[str, Any]],
    actions: list[dict[str, Any]] | None = None,
) -> dict[str, int]:
    """Store a pull cluster's reported judgements as its results. A result for a policy
    that no longer targets the cluster, or judged at another generation than the current
    one, is ignored (`stale`); an unchanged outcome moves the stored row's `checked_at`.
    Enforcement actions the agent took are recorded and audited like the hub's."""
    targeting = {p.pk: p for p in applicable([cluster], None).get(cluster.pk, [])}
    stamp = inventory_stamps([cluster.pk]).get(cluster.pk, "")
    run_id = uuid.uuid4()
    rows: list[Outcome] = []
    stale = 0
    for report in results:
        policy = targeting.get(int(report.get("policy", 0)))
        if policy is None or int(report.get("generation", 0)) != policy.generation:
            stale += 1
            continue
        rows.append(_reported(policy, cluster, run_id, stamp, report))
    rows = list({row.policy_id: row for row in rows}.values())  # one per policy
    last = last_results([cluster.pk], [row.policy_id for row in rows]) if rows else {}
    store(rows, False, last)
    taken = _record_actions(cluster, targeting, actions or [], run_id)
    return {"stored": len(rows), "stale": stale, "actions": taken}


def _record_actions(
    cluster: Cluster, targeting: dict[int, Policy], actions: list[dict[str, Any]], run_id: uuid.UUID
) -> int:
    by_policy: dict[int, list[EnforcementAction]] = {}
    actors: dict[int, AbstractBaseUser | None] = {}
    overrides = cluster_mode_overrides(list(targeting), [cluster.pk]) if actions else {}
    for action in actions:
        policy = targeting.get(int(action.get("policy", 0)))
        override = overrides.get((policy.pk, cluster.pk)) if policy is not None else None
        if policy is None or mode_with(policy, override) != Mode.ENFORCE:
            continue  # the agent only enforces the policies enforcing on its cluster
        if action.get("action") not in ActionKind.values:
            continue
        status = action.get("status")
        actor = actors.setdefault(policy.pk, enforcement_actor(policy, override))
        by_policy.setdefault(policy.pk, []).append(
            EnforcementAction(
                policy=policy,
                cluster=cluster,
                rule_name=str(action.get("rule", ""))[:63],
                run_id=run_id,
                action=action["action"],
                status=status if status in ActionStatus.values else ActionStatus.FAILED,
                target={k: str(v)[:253] for k, v in (action.get("target") or {}).items()},
                message=str(action.get("message", ""))[:1000],
                actor_id=actor.pk if actor is not None else None,
            )
        )
    with transaction.atomic():
        for policy_id, rows in by_policy.items():
            policy = targeting[policy_id]
            EnforcementAction.objects.bulk_create(rows)
            audit_record(
                actor=actors[policy_id],
                action="policy.enforce",
                target=policy,
                team=policy.team,
                detail={
                    "cluster": cluster.name,
                    "trigger": "agent",
                    "objects": [row.target for row in rows],
                },
            )
    return sum(len(rows) for rows in by_policy.values())
