"""Acceptance (issue 28): a policy promoted from inform to enforce in two stages, cluster A
then cluster B (real kube-apiservers), with the impact of each stage previewed; and the
same promotion stopped by a gate in stage 2, which puts A back to inform.

The run is driven through its services and checks; the test plays the policies worker
(the batch task that the mode change queues: evaluate, then remediate where the policy
enforces) and, in the second scenario, the evaluation sweep."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s

from accounts.models import Team
from clusters.choices import ClusterStatus
from clusters.models import Cluster
from localkube.env import LocalCluster, LocalKubeEnv
from policies.choices import Mode, ResultStatus, Severity
from policies.models import EnforcementAction, Policy, PolicyClusterMode, PolicyEvaluation
from policies.services.cluster_modes import effective_mode
from policies.services.evaluation import cluster_evaluate
from policies.services.policies import PolicySpec, policy_create
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
from tests.updates.conftest import Clock, check, log_of, operation, states
from updates.choices import ClusterState, RunState, StageState
from updates.models import UpdateRun, UpdateStrategy
from updates.services import (
    update_run_create,
    update_run_preview,
    update_run_start,
    update_strategy_save,
)

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
LEAK = "leaked-credentials"
Pair = dict[str, tuple[Cluster, k8s.ApiClient]]


@pytest.fixture(scope="module")
def second(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """Cluster B beside member-1 (A): an API server is all templates need."""
    name = f"accept-b-{uuid.uuid4().hex[:4]}"
    yield kube_env.start_cluster(name, controllers=False, simulate=False)
    kube_env.stop_cluster(name, remove_data=True)


@pytest.fixture
def namespace() -> str:
    return f"accept-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def pair(
    kube_cluster: LocalCluster, second: LocalCluster, team: Team, namespace: str
) -> Iterator[Pair]:
    """A (ring first) and B (ring second), Ready push clusters, each with `namespace`
    holding the debug ConfigMap the policy forbids."""
    found = {}
    for label, ring, local in (("A", "first", kube_cluster), ("B", "second", second)):
        api = local.control_plane.api_client()
        k8s.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        add_debug(api, namespace)
        cluster = register_local(local, team=team, name=f"{label.lower()}-{namespace}")
        Cluster.objects.filter(pk=cluster.pk).update(
            status=ClusterStatus.READY, labels={"ring": ring}
        )
        cluster.refresh_from_db()
        found[label] = (cluster, api)
    yield found
    for _, api in found.values():
        k8s.CoreV1Api(api).delete_namespace(namespace)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


def two_stages(team: Team, owner: Member) -> UpdateStrategy:
    return update_strategy_save(
        actor=owner.user,
        strategy=UpdateStrategy(
            team=team,
            name="first-then-second",
            stages=[
                {
                    "name": "first",
                    "soak_seconds": 120,
                    "groups": [{"name": "a", "selector": "ring=first"}],
                },
                {"name": "second", "groups": [{"name": "b", "selector": "ring=second"}]},
            ],
        ),
    )


def promotion(team: Team, owner: Member, policy: Policy) -> UpdateRun:
    """Created by an admin: turning enforcement on takes the enforce role."""
    return update_run_create(
        actor=owner.user,
        team=team,
        name=f"enforce {policy.name}",
        strategy=two_stages(team, owner),
        change_kind="policy_mode",
        change_params={"policy": policy.name},
    )


def stage_impact(preview: dict[str, Any], stage: int) -> dict[str, tuple[int, set[Any]]]:
    """The impact the preview shows for each cluster of a stage: (count, objects)."""
    names = [c["name"] for g in preview["stages"][stage]["groups"] for c in g["clusters"]]
    return {
        name: (preview["impact"][name]["count"], impact_objects(preview["impact"][name]))
        for name in names
    }


def drive(run: UpdateRun, clock: Clock, policy: Policy, until: Any, limit: int = 30) -> UpdateRun:
    """The run's checks; after each, the policies worker runs the evaluation the mode
    change queued for the clusters changing."""
    for _ in range(limit):
        run.refresh_from_db()
        if until(run):
            return run
        run = check(run, clock)
        changing = [r.cluster for r in run.run_clusters.filter(state=ClusterState.CHANGING)]
        if changing:
            evaluate_worker(policy, *[c for c in changing if c is not None])
    raise AssertionError(f"not reached in {limit} checks: {run.state} {run.message}")


def stage_state(run: UpdateRun, index: int) -> str:
    return str(run.run_stages.get(index=index).state)


def newest(policy: Policy, cluster: Cluster) -> PolicyEvaluation:
    row = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).first()
    assert row is not None
    return row


def test_a_policy_is_promoted_stage_by_stage_with_each_stage_impact_previewed(
    pair: Pair, team: Team, owner: Member, namespace: str, clock: Clock
) -> None:
    (a, a_api), (b, b_api) = pair["A"], pair["B"]
    policy = isolation_policy(team, namespace)
    for cluster in (a, b):  # the sweep, in inform mode: both violate, nothing is fixed
        [row] = cluster_evaluate(cluster=cluster, policy_ids=[policy.pk], force=True)
        assert row.status == ResultStatus.NONCOMPLIANT
    run = promotion(team, owner, policy)

    # when the run is previewed, then each stage shows what enforcing does on its cluster
    preview = update_run_preview(run=run)
    assert stage_impact(preview, 0) == {a.name: (2, expected_impact(namespace))}
    assert stage_impact(preview, 1) == {b.name: (2, expected_impact(namespace))}
    assert [
        [(c["name"], c["from"], c["to"], c["skip_reason"]) for c in s["groups"][0]["clusters"]]
        for s in preview["stages"]
    ] == [[(a.name, "inform", "enforce", "")], [(b.name, "inform", "enforce", "")]]
    assert preview["change"]["reversible"] is True

    # when it starts and stage first is done (soaking)
    update_run_start(actor=owner.user, run=run)
    run = drive(run, clock, policy, lambda r: stage_state(r, 0) == StageState.SOAKING)

    # then A enforces: the debug ConfigMap is gone and the NetworkPolicy applied; B only reports
    assert effective_mode(policy, a) == Mode.ENFORCE
    assert effective_mode(policy, b) == Mode.INFORM
    assert (has_debug(a_api, namespace), netpols(a_api, namespace)) == (False, [NETPOL])
    assert (has_debug(b_api, namespace), netpols(b_api, namespace)) == (True, [])
    assert newest(policy, a).status == ResultStatus.COMPLIANT
    assert set(
        EnforcementAction.objects.filter(policy=policy).values_list("cluster", flat=True)
    ) == {a.pk}
    # and the preview now shows nothing left to do on A, and stage second's objects on B
    preview = update_run_preview(run=run)
    assert stage_impact(preview, 0) == {a.name: (0, set())}
    assert stage_impact(preview, 1) == {b.name: (2, expected_impact(namespace))}

    # when the run goes on to its end
    run = drive(run, clock, policy, lambda r: r.state != RunState.RUNNING)

    # then B enforces too, and the policy itself enforces with no per-cluster override
    assert run.state == RunState.SUCCEEDED, run.message
    assert (has_debug(b_api, namespace), netpols(b_api, namespace)) == (False, [NETPOL])
    assert newest(policy, b).status == ResultStatus.COMPLIANT
    policy.refresh_from_db()
    assert (policy.mode, policy.enforced_by) == (Mode.ENFORCE, owner.user)
    assert not PolicyClusterMode.objects.filter(policy=policy).exists()
    assert run.message == f"policy {policy.name} → enforce: 2 cluster(s) changed"
    lines = log_of(run)
    assert lines.index("Stage first: succeeded; gates passed after the soak") < lines.index(
        "Stage second: started; 1 cluster(s)"
    )


def critical_leak_policy(team: Team, namespace: str) -> Policy:
    """Critical, inform: no ConfigMap named `leaked-credentials` in `namespace`."""
    return policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name=f"no-leaks-{namespace}",
            severity=Severity.CRITICAL,
            rules=[
                {
                    "name": "no-leak",
                    "kind": "template",
                    "compliance_type": "mustnothave",
                    "match": {"namespaces": [namespace]},
                    "object_template": {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": LEAK},
                    },
                },
            ],
        ),
    )


def test_a_gate_failing_in_stage_two_reverts_both_clusters_to_inform(
    pair: Pair, team: Team, owner: Member, namespace: str, clock: Clock
) -> None:
    (a, a_api), (b, b_api) = pair["A"], pair["B"]
    policy = isolation_policy(team, namespace)
    leaks = critical_leak_policy(team, namespace)
    for cluster in (a, b):  # the sweep: no leak anywhere
        cluster_evaluate(cluster=cluster, policy_ids=[policy.pk, leaks.pk], force=True)
        assert newest(leaks, cluster).status == ResultStatus.COMPLIANT
    run = promotion(team, owner, policy)
    update_run_start(actor=owner.user, run=run)
    run = drive(
        run, clock, policy, lambda r: r.run_clusters.filter(cluster=b).get().state != "pending"
    )
    assert not has_debug(a_api, namespace)
    assert stage_state(run, 0) == StageState.SUCCEEDED

    # when, while B changes, a critical violation appears on B (the sweep finds it)
    k8s.CoreV1Api(b_api).create_namespaced_config_map(namespace, {"metadata": {"name": LEAK}})
    cluster_evaluate(cluster=b, policy_ids=[leaks.pk], force=True)
    run = drive(run, clock, policy, lambda r: r.state not in (RunState.RUNNING, RunState.REVERTING))

    # then B's gate fails, the run stops, and B then A go back to inform
    failure = (
        f"{b.name}: gates failed: Critical policy {leaks.name} finds 1 violation on {b.name} "
        f"(was 0 before the change): ConfigMap {namespace}/{LEAK}."
    )
    assert run.state == RunState.REVERTED, run.message
    assert run.failure == failure
    assert states(run) == {
        a.name: ClusterState.REVERTED,
        b.name: ClusterState.REVERTED,
    }
    assert stage_state(run, 1) == StageState.FAILED
    done = operation(run)
    assert (done.state, done.error) == ("failed", f"{failure}; reverted 2 cluster(s)")
    lines = log_of(run)
    assert lines.index(f"{b.name}: reverting to inform") < lines.index(
        f"{a.name}: reverting to inform"
    )
    assert effective_mode(policy, a) == effective_mode(policy, b) == Mode.INFORM
    assert not PolicyClusterMode.objects.filter(policy=policy).exists()
    policy.refresh_from_db()
    assert policy.mode == Mode.INFORM
    # and A no longer enforces: a debug ConfigMap created again there stays, only reported
    actions = EnforcementAction.objects.filter(policy=policy).count()
    add_debug(a_api, namespace)
    evaluate_worker(policy, a, b)
    assert has_debug(a_api, namespace)
    assert newest(policy, a).status == ResultStatus.NONCOMPLIANT
    assert EnforcementAction.objects.filter(policy=policy).count() == actions
