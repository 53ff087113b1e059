"""The update runs' `policy_mode` change without a cluster: its parameters, its plan
(skipped clusters and why) and when `poll` says a cluster is done, from stored
evaluations and enforcement actions (the kube test drives the whole of it)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import Team
from clusters.models import Cluster
from policies.choices import Mode
from policies.models import EnforcementAction, Policy
from policies.services.cluster_modes import policy_cluster_modes_set
from policies.services.policies import PolicySpec, policy_create
from tests.factories import make_cluster, make_evaluation
from updates.changes import change_for
from updates.changes.policy_mode import enforced_step

pytestmark = pytest.mark.django_db
NO_DEBUG = {
    "name": "no-debug",
    "kind": "template",
    "compliance_type": "mustnothave",
    "object_template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "debug"}},
}
NO_DEBUG_VIOLATION = {"rule": "no-debug", "kind": "ConfigMap", "namespace": "x", "name": "debug"}


@pytest.fixture
def policy(team: Team) -> Policy:
    return policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(name="guard", cluster_selector="tier=web", rules=[NO_DEBUG]),
    )


def test_parameters_are_validated_naming_the_field(team: Team, policy: Policy) -> None:
    Policy.objects.create(team=team, name="kyverno-x", source_engine="kyverno")
    Policy.objects.create(team=team, name="from-git", managed_by={"repository": 1})
    Policy.objects.create(team=team, name="off", enabled=False)
    cases: list[tuple[dict[str, Any], dict[str, list[str]]]] = [
        ({"policy": "nope"}, {"policy": ["No policy named 'nope' in team payments."]}),
        ({}, {"policy": ["Name the policy to change."]}),
        (
            {"policy": "kyverno-x"},
            {"policy": ["Policy kyverno-x is judged by Kyverno: Keelson does not enforce it."]},
        ),
        (
            {"policy": "from-git"},
            {"policy": ["Policy from-git is declared in a Git repository: change its mode there."]},
        ),
        ({"policy": "off"}, {"policy": ["Policy off is disabled: enable it first."]}),
        ({"policy": "guard", "mode": "block"}, {"mode": ["Use one of inform, enforce."]}),
        (
            {"policy": "guard", "stage": 1},
            {"change_params": ["Unknown parameters: stage."]},
        ),
    ]
    for params, errors in cases:
        with pytest.raises(ValidationError) as refused:
            change_for("policy_mode", team=team, params=params)
        assert refused.value.message_dict == errors

    change = change_for("policy_mode", team=team, params={"policy": "guard"})
    assert change.params() == {"policy": "guard", "mode": "enforce"}
    assert change.describe() == "policy guard → enforce"
    assert (change.kind, change.reversible) == ("policy_mode", True)


def test_the_plan_skips_clusters_outside_the_scope_or_already_there(
    team: Team, policy: Policy
) -> None:
    web = [make_cluster(team=team, name=n, labels={"tier": "web"}) for n in ("w1", "w2")]
    batch = make_cluster(team=team, name="b1", labels={"tier": "batch"})
    policy_cluster_modes_set(actor=None, policy=policy, clusters=[web[1]], mode=Mode.ENFORCE)
    change = change_for("policy_mode", team=team, params={"policy": "guard", "mode": "enforce"})

    plans = change.plan([*web, batch])

    assert [(p.cluster_name, p.from_value, p.to_value, p.skip_reason) for p in plans] == [
        ("w1", "inform", "enforce", ""),
        ("w2", "enforce", "enforce", "already enforce"),
        ("b1", "inform", "enforce", "not targeted by policy guard (outside its scope)"),
    ]
    # a demotion run sees the same clusters the other way round
    demote = change_for("policy_mode", team=team, params={"policy": "guard", "mode": "inform"})
    assert [p.skip_reason for p in demote.plan(web)] == ["already inform", ""]
    assert demote.impact(web) == {}


def _action(policy: Policy, cluster: Cluster, status: str) -> EnforcementAction:
    return EnforcementAction.objects.create(
        policy=policy,
        cluster=cluster,
        rule_name="no-debug",
        run_id=uuid.uuid4(),
        action="delete",
        status=status,
        target={"kind": "ConfigMap", "namespace": "x", "name": "debug"},
        message="forbidden" if status == "failed" else "deleted",
    )


def test_poll_waits_for_the_evaluation_and_the_remediation_it_calls_for(
    team: Team, policy: Policy
) -> None:
    cluster = make_cluster(team=team, name="w1", labels={"tier": "web"})
    since = timezone.now()
    make_evaluation(
        policy=policy, cluster=cluster, status="compliant", at=since - timedelta(minutes=5)
    )
    # an evaluation from before the change does not count
    assert enforced_step(policy, cluster, since).state == "running"
    # evaluated since, with a template violation: remediation is due
    make_evaluation(
        policy=policy,
        cluster=cluster,
        status="noncompliant",
        at=timezone.now(),
        violations=[NO_DEBUG_VIOLATION],
        violations_total=1,
    )
    step = enforced_step(policy, cluster, since)
    assert (step.state, step.message) == ("running", "remediation due")
    # remediated, but not evaluated again yet
    _action(policy, cluster, "succeeded")
    assert enforced_step(policy, cluster, since).state == "running"
    # evaluated again after the remediation: done
    make_evaluation(
        policy=policy, cluster=cluster, status="compliant", at=timezone.now(), message="ok"
    )
    step = enforced_step(policy, cluster, since)
    assert (step.state, step.message) == (
        "done",
        "1 object(s) remediated; evaluated in enforce mode: ok",
    )
    # a failed remediation fails the cluster's change
    _action(policy, cluster, "failed")
    step = enforced_step(policy, cluster, since)
    assert step.state == "failed"
    assert step.message == ("remediation failed on 1 object(s), first ConfigMap x/debug: forbidden")


def test_poll_of_inform_is_done_at_once_and_a_disabled_policy_fails(
    team: Team, policy: Policy
) -> None:
    cluster = make_cluster(team=team, name="w1", labels={"tier": "web"})
    change = change_for("policy_mode", team=team, params={"policy": "guard"})
    state = change.start(cluster, actor=None)
    assert change.poll(cluster, state).state == "running"
    assert change.poll(cluster, {**state, "mode": "inform"}).state == "done"

    Policy.objects.filter(pk=policy.pk).update(enabled=False)

    step = change.poll(cluster, state)
    assert (step.state, step.message) == ("failed", "policy guard was disabled")
