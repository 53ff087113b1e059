"""A policy promoted from inform to enforce in two stages (cluster A, then cluster B) on
real kube-apiservers, driven through the update runs' change interface as the engine
drives it: impact before each stage, start, what the worker does (evaluate then
remediate), poll, and finish; and the revert of a stage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from accounts.models import Team
from clusters.models import Cluster
from localkube.env import LocalCluster, LocalKubeEnv
from policies.choices import Mode, ResultStatus
from policies.models import EnforcementAction, Policy, PolicyClusterMode, PolicyEvaluation
from policies.services.cluster_modes import effective_mode
from policies.services.evaluation import cluster_evaluate
from policies.services.policies import PolicySpec, policy_create
from policies.tasks import policies_evaluate_batch_task
from tests.clusters.helpers import register_local
from tests.factories import Member
from updates.changes import change_for
from updates.changes.base import Change

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
DEBUG, NETPOL = "debug-shell", "default-deny-ingress"


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
        core.create_namespaced_config_map(namespace, {"metadata": {"name": DEBUG}})
        cluster = register_local(local, team=team, name=f"{label.lower()}-{namespace}")
        found[label] = (cluster, api)
    yield found
    for _, api in found.values():
        k8s.CoreV1Api(api).delete_namespace(namespace)


def _policy(team: Team, namespace: str) -> Policy:
    """Inform: a NetworkPolicy must exist and the debug ConfigMap must not, in `namespace`."""
    match = {"namespaces": [namespace]}
    return policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name=f"isolation-{namespace}",
            rules=[
                {
                    "name": "default-deny",
                    "kind": "template",
                    "compliance_type": "musthave",
                    "match": match,
                    "object_template": {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "NetworkPolicy",
                        "metadata": {"name": NETPOL},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
                    },
                },
                {
                    "name": "no-debug-shell",
                    "kind": "template",
                    "compliance_type": "mustnothave",
                    "match": match,
                    "object_template": {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": DEBUG},
                    },
                },
            ],
        ),
    )


def _worker(policy: Policy, *clusters: Cluster) -> None:
    """What the queued batch task does on a worker: evaluate (forced), then remediate
    where the policy enforces."""
    policies_evaluate_batch_task([c.pk for c in clusters], [policy.pk], True)


def _has_debug(api: k8s.ApiClient, namespace: str) -> bool:
    try:
        k8s.CoreV1Api(api).read_namespaced_config_map(DEBUG, namespace)
    except ApiException as error:
        assert error.status == 404
        return False
    return True


def _netpols(api: k8s.ApiClient, namespace: str) -> list[str]:
    items = k8s.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items
    return [item.metadata.name for item in items]


def _newest(policy: Policy, cluster: Cluster) -> PolicyEvaluation:
    row = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).first()
    assert row is not None
    return row


def _expected_impact(namespace: str) -> set[tuple[str, str, str, str]]:
    """Worked out by hand: the ConfigMap we created is deleted, the NetworkPolicy applied."""
    return {
        ("delete", "ConfigMap", namespace, DEBUG),
        ("apply", "NetworkPolicy", namespace, NETPOL),
    }


def _impact_of(change: Change, cluster: Cluster) -> tuple[int, set[tuple[str, str, str, str]]]:
    impact = change.impact([cluster])[cluster.name]
    objects = {(o["effect"], o["kind"], o["namespace"], o["name"]) for o in impact["objects"]}
    return impact["count"], objects


def test_a_policy_is_promoted_to_enforce_in_two_stages(
    pair: dict[str, tuple[Cluster, k8s.ApiClient]], team: Team, owner: Member, namespace: str
) -> None:
    (a, a_api), (b, b_api) = pair["A"], pair["B"]
    policy = _policy(team, namespace)
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
    assert _impact_of(change, a) == (2, _expected_impact(namespace))
    state = change.start(a, actor=owner.user)
    assert change.poll(a, state).state == "running"  # not evaluated in enforce mode yet
    _worker(policy, a, b)
    assert change.poll(a, state).state == "done"
    assert (_has_debug(a_api, namespace), _netpols(a_api, namespace)) == (False, [NETPOL])
    assert (_has_debug(b_api, namespace), _netpols(b_api, namespace)) == (True, [])
    assert _newest(policy, a).status == ResultStatus.COMPLIANT
    assert _newest(policy, b).status == ResultStatus.NONCOMPLIANT
    assert {
        (x.cluster_id, x.actor_id) for x in EnforcementAction.objects.filter(policy=policy)
    } == {(a.pk, owner.user.pk)}

    # stage 2: the impact names B's objects; then both enforce
    assert _impact_of(change, b) == (2, _expected_impact(namespace))
    assert _impact_of(change, a) == (0, set())  # already fixed
    state_b = change.start(b, actor=owner.user)
    _worker(policy, a, b)
    assert change.poll(b, state_b).state == "done"
    assert (_has_debug(b_api, namespace), _netpols(b_api, namespace)) == (False, [NETPOL])
    assert _newest(policy, b).status == ResultStatus.COMPLIANT

    # every stage succeeded: the policy itself enforces, without overrides
    change.finish([a, b], actor=owner.user)
    policy.refresh_from_db()
    assert (policy.mode, policy.enforced_by) == (Mode.ENFORCE, owner.user)
    assert not PolicyClusterMode.objects.filter(policy=policy).exists()
    # and keeps enforcing: a debug ConfigMap created again in B is removed
    k8s.CoreV1Api(b_api).create_namespaced_config_map(namespace, {"metadata": {"name": DEBUG}})
    _worker(policy, a, b)
    assert not _has_debug(b_api, namespace)


def test_reverting_stage_one_puts_a_back_to_inform(
    pair: dict[str, tuple[Cluster, k8s.ApiClient]], team: Team, owner: Member, namespace: str
) -> None:
    (a, a_api), (b, _) = pair["A"], pair["B"]
    policy = _policy(team, namespace)
    change = change_for("policy_mode", team=team, params={"policy": policy.name, "mode": "enforce"})
    state = change.start(a, actor=owner.user)
    _worker(policy, a)
    assert change.poll(a, state).state == "done"
    assert not _has_debug(a_api, namespace)

    # when a gate fails and the stage is reverted
    reverted = change.revert(a, state, actor=owner.user)

    # then A is back to inform at once and its violations are only reported again
    assert change.poll(a, reverted).state == "done"
    assert effective_mode(policy, a) == effective_mode(policy, b) == Mode.INFORM
    actions = EnforcementAction.objects.filter(policy=policy).count()
    k8s.CoreV1Api(a_api).create_namespaced_config_map(namespace, {"metadata": {"name": DEBUG}})
    _worker(policy, a)
    assert _has_debug(a_api, namespace)
    assert _newest(policy, a).status == ResultStatus.NONCOMPLIANT
    assert EnforcementAction.objects.filter(policy=policy).count() == actions
