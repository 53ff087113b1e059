"""The hub's side of pull clusters' policies, without a cluster: what the agent is given,
what the hub keeps of its reports, and the "evaluate" button."""

from __future__ import annotations

import pytest

from accounts.models import Team
from clusters.services.registration import ClusterFields, cluster_register_pull
from policies.choices import ResultStatus
from policies.models import PolicyEvaluation
from policies.services.agent import agent_policies, agent_policies_report
from policies.services.evaluation import cluster_evaluate, policy_evaluate
from policies.services.policies import PolicySpec, policy_create, policy_update

RULE = {
    "name": "host-network",
    "kind": "object",
    "match": {"kinds": ["Pod"]},
    "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
}


@pytest.mark.django_db
def test_the_hub_keeps_a_pull_clusters_reports_as_its_results(team: Team) -> None:
    cluster, _ = cluster_register_pull(actor=None, fields=ClusterFields(name="edge-h", team=team))
    policy = policy_create(team=team, actor=None, spec=PolicySpec(name="hostnet", rules=[RULE]))

    # the hub never evaluates it itself (no error row in its place)
    assert cluster_evaluate(cluster=cluster, force=True) == []
    # its agent is given the policy with its generation and rules
    [given] = agent_policies(cluster=cluster)["policies"]
    assert (given["id"], given["generation"], given["rules"][0]["name"]) == (
        policy.pk,
        1,
        "host-network",
    )

    # a report is stored as the hub's own outcome would be
    violation = {"rule": "host-network", "kind": "Pod", "namespace": "a", "name": "p"}
    report = {"policy": policy.pk, "generation": 1, "checked": 3, "violations": [violation]}
    report |= {"violations_total": 1}
    assert agent_policies_report(cluster=cluster, results=[report]) == {
        "stored": 1,
        "stale": 0,
        "actions": 0,
    }
    row = PolicyEvaluation.objects.get(policy=policy, cluster=cluster)
    assert (row.status, row.message) == (ResultStatus.NONCOMPLIANT, "1 violation(s) in 3 checked")
    # the same outcome again keeps one row (its checked_at moves), as for a push cluster
    agent_policies_report(cluster=cluster, results=[report])
    assert PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).count() == 1
    # a report judged at an older generation is not stored
    policy = policy_update(
        policy=policy, spec=PolicySpec(name="hostnet", description="x", rules=[RULE]), actor=None
    )
    assert agent_policies_report(cluster=cluster, results=[report])["stale"] == 1
    assert PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).count() == 1


@pytest.mark.django_db
def test_evaluate_asks_a_pull_clusters_agent(team: Team) -> None:
    cluster, _ = cluster_register_pull(actor=None, fields=ClusterFields(name="edge-e", team=team))
    policy = policy_create(team=team, actor=None, spec=PolicySpec(name="hostnet", rules=[RULE]))
    assert agent_policies(cluster=cluster)["evaluate_now"] is False

    evaluated = policy_evaluate(policy=policy)

    assert (evaluated.results, evaluated.queued) == ([], 0)
    assert agent_policies(cluster=cluster)["evaluate_now"] is True
    assert agent_policies(cluster=cluster)["evaluate_now"] is False  # asked once
