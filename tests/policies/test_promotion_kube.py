"""A policy promoted from inform to enforce in two stages (cluster A, then cluster B) on
real kube-apiservers, driven through the update runs' change interface as the engine
drives it: impact before each stage, start, what the worker does (evaluate then
remediate), poll, and finish; and the revert of a stage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from accounts.models import Team
from clusters.models import Cluster
from localkube.env import LocalCluster, LocalKubeEnv
from policies.choices import Mode, ResultStatus
from policies.models import EnforcementAction, Policy, PolicyClusterMode, PolicyEvaluation
from policies.services.cluster_modes import effective_mode
from policies.services.evaluation import cluster_evaluate
from tests.clusters.helpers import register_local
from tests.factories import Member
from tests.policies.isolation import (
    NETPOL,
    add_debug,
    evaluate_worker,
    expected_impact,
    has_debug,
    impact_objects,
    isolation_policy,
    netpols,
)
from updates.changes import change_for
from updates.changes.base import Change

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(scope="module")
def second(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """Cluster B beside member-1 (A): an API server is all templates need."""
    name = f"promote-b-{uuid.uuid4().hex[:4]}"
    yield kube_env.start_cluster(name, controllers=False, simulate=False)
    kube_env.stop_cluster(name, remove_data=True)


@pytest.fixture
def namespace() -> str:
    return f"promo-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def pair(
    kube_cluster: LocalCluster, second: LocalCluster, team: Team, namespace: str
) -> Iterator[dict[str, tuple[Cluster, k8s.ApiClient]]]:
    """A and B registered, each with `namespace` holding the forbidden ConfigMap."""
    found = {}
    for label, local in (("A", kube_cluster), ("B", second)):
        api = local.control_plane.api_client()
        core = k8s.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}})
        add_debug(api, namespace)
        cluster = register_local(local, team=team, name=f"{label.lower()}-{namespace}")
        found[label] = (cluster, api)
    yield found
    for _, api in found.values():
        k8s.CoreV1Api(api).delete_namespace(namespace)


def _newest(policy: Policy, cluster: Cluster) -> PolicyEvaluation:
    row = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).first()
    assert row is not None
    return row


def _impact_of(change: Change, cluster: Cluster) -> tuple[int, set[tuple[str, str, str, str]]]:
    impact = change.impact([cluster])[cluster.name]
    return impact["count"], impact_objects(impact)


def test_a_policy_is_promoted_to_enforce_in_two_stages(
    pair: dict[str, tuple[Cluster, k8s.ApiClient]], team: Team, owner: Member, namespace: str
) -> None:
    (a, a_api), (b, b_api) = pair["A"], pair["B"]
    policy = isolation_policy(team, namespace)
    for cluster in (a, b):
        [row] = cluster_evaluate(cluster=cluster, policy_ids=[policy.pk], force=True)
        assert row.status == ResultStatus.NONCOMPLIANT
    change = change_for("policy_mode", team=team, params={"policy": policy.name})
    assert change.params() == {"policy": policy.name, "mode": "enforce"}
    assert [
        (p.cluster_name, p.from_value, p.to_value, p.skip_reason) for p in change.plan([a, b])
    ] == [
        (a.name, "inform", "enforce", ""),
        (b.name, "inform", "enforce", ""),
    ]

    # stage 1: the impact names A's objects; A enforces, B only reports
    assert _impact_of(change, a) == (2, expected_impact(namespace))
    state = change.start(a, actor=owner.user)
    assert change.poll(a, state).state == "running"  # not evaluated in enforce mode yet
    evaluate_worker(policy, a, b)
    assert change.poll(a, state).state == "done"
    assert (has_debug(a_api, namespace), netpols(a_api, namespace)) == (False, [NETPOL])
    assert (has_debug(b_api, namespace), netpols(b_api, namespace)) == (True, [])
    assert _newest(policy, a).status == ResultStatus.COMPLIANT
    assert _newest(policy, b).status == ResultStatus.NONCOMPLIANT
    assert {
        (x.cluster_id, x.actor_id) for x in EnforcementAction.objects.filter(policy=policy)
    } == {(a.pk, owner.user.pk)}

    # stage 2: the impact names B's objects; then both enforce
    assert _impact_of(change, b) == (2, expected_impact(namespace))
    assert _impact_of(change, a) == (0, set())  # already fixed
    state_b = change.start(b, actor=owner.user)
    evaluate_worker(policy, a, b)
    assert change.poll(b, state_b).state == "done"
    assert (has_debug(b_api, namespace), netpols(b_api, namespace)) == (False, [NETPOL])
    assert _newest(policy, b).status == ResultStatus.COMPLIANT

    # every stage succeeded: the policy itself enforces, without overrides
    change.finish([a, b], actor=owner.user)
    policy.refresh_from_db()
    assert (policy.mode, policy.enforced_by) == (Mode.ENFORCE, owner.user)
    assert not PolicyClusterMode.objects.filter(policy=policy).exists()
    # and keeps enforcing: a debug ConfigMap created again in B is removed
    add_debug(b_api, namespace)
    evaluate_worker(policy, a, b)
    assert not has_debug(b_api, namespace)


def test_reverting_stage_one_puts_a_back_to_inform(
    pair: dict[str, tuple[Cluster, k8s.ApiClient]], team: Team, owner: Member, namespace: str
) -> None:
    (a, a_api), (b, _) = pair["A"], pair["B"]
    policy = isolation_policy(team, namespace)
    change = change_for("policy_mode", team=team, params={"policy": policy.name, "mode": "enforce"})
    state = change.start(a, actor=owner.user)
    evaluate_worker(policy, a)
    assert change.poll(a, state).state == "done"
    assert not has_debug(a_api, namespace)

    # when a gate fails and the stage is reverted
    reverted = change.revert(a, state, actor=owner.user)

    # then A is back to inform at once and its violations are only reported again
    assert change.poll(a, reverted).state == "done"
    assert effective_mode(policy, a) == effective_mode(policy, b) == Mode.INFORM
    actions = EnforcementAction.objects.filter(policy=policy).count()
    add_debug(a_api, namespace)
    evaluate_worker(policy, a)
    assert has_debug(a_api, namespace)
    assert _newest(policy, a).status == ResultStatus.NONCOMPLIANT
    assert EnforcementAction.objects.filter(policy=policy).count() == actions
