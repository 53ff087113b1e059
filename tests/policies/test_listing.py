"""A result lists at most MAX_LISTED violating objects and keeps the exact total: the API
and the pages say when the list is partial ("first 500 of 1,490")."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from accounts.models import Team
from policies.engine import Snapshot, judge
from policies.models import PolicyEvaluation
from policies.services.evaluation.outcomes import EVALUATION_COLUMNS, outcome
from policies.services.policies import PolicySpec, build_rules, policy_create
from tests.factories import Member, make_cluster

pytestmark = pytest.mark.django_db
RULE = {
    "name": "no-host-network",
    "kind": "object",
    "match": {"kinds": ["Pod"]},
    "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
}


def _pods(count: int, host_network: bool) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "web", "uid": f"u{host_network}{i}"},
            "spec": {"hostNetwork": host_network, "containers": [{"name": "c", "image": "x:1"}]},
        }
        for i in range(count)
    ]


def _store(team: Team, cluster: str, violating: int, fine: int) -> PolicyEvaluation:
    """Judge a cluster with `violating` + `fine` pods and store the outcome as a sweep would."""
    policy = team.policies.first() or policy_create(
        team=team, actor=None, spec=PolicySpec(name="host-net", rules=[RULE])
    )
    pods = _pods(violating, True) + _pods(fine, False)
    judgement = judge(
        build_rules([RULE]), Snapshot(objects={("", "Pod"): pods}, namespaced={}, cluster={})
    )
    row = outcome(
        policy, make_cluster(team=team, name=cluster), uuid.uuid4(), "", False, judgement=judgement
    )
    return PolicyEvaluation.objects.create(
        **dict(zip(EVALUATION_COLUMNS, row.values(), strict=True))
    )


def test_a_long_list_keeps_the_full_count_and_says_it_is_partial(
    operator: Member, team: Team
) -> None:
    # given 1,490 violating pods on one cluster and 3 on another
    _store(team, "eu-1", violating=1490, fine=10)
    _store(team, "eu-2", violating=3, fine=1)

    # then the stored result lists 500 and counts all 1,490
    big = PolicyEvaluation.objects.get(cluster__name="eu-1")
    assert (len(big.violations), big.violations_total, big.objects_checked) == (500, 1490, 1500)

    # and the API says so
    rows = operator.api.get("/api/v1/policies/host-net/results/").json()
    by_cluster = {r["cluster"]: r for r in rows}  # the newest result per cluster
    eu1, eu2 = by_cluster["eu-1"], by_cluster["eu-2"]
    assert (len(eu1["violations"]), eu1["violations_total"], eu1["violations_partial"]) == (
        500,
        1490,
        True,
    )
    assert eu1["listing_note"] == "first 500 of 1,490 violating objects listed"
    assert (eu2["violations_total"], eu2["violations_partial"], eu2["listing_note"]) == (
        3,
        False,
        "",
    )

    # and so do the policy page and the cluster's compliance card
    page = operator.page.get(f"/policies/{team.name}/host-net/").content.decode()
    assert "(first 500 of 1,490 violating objects listed)" in page
    assert page.count("violating objects listed") == 1
    card = operator.page.get("/policies/cluster/eu-1/compliance/").content.decode()
    assert "(first 500 of 1,490 violating objects listed)" in card
    card = operator.page.get("/policies/cluster/eu-2/compliance/").content.decode()
    assert "violating objects listed" not in card
