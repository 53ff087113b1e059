"""Gates read from the hub's own records: critical policy violations (the newest result of
each policy on the cluster), unhealthy conditions, and a pull cluster's workloads as its
agent reports them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from applications.models import Application, ClusterWork
from applications.propagation import agent_work_report
from clusters.choices import ClusterMode, ClusterStatus
from clusters.models import Cluster, ClusterInventory
from policies.choices import Severity
from policies.services.policies import PolicySpec, policy_create
from tests.factories import make_cluster, make_evaluation, make_team
from updates.gates import gate_baseline, gate_check, gates_validate

pytestmark = pytest.mark.django_db

RULE = {"name": "r", "kind": "cluster", "expression": "cluster.nodeCount >= 0"}
POLICIES_ONLY = gates_validate({"workloads": False, "conditions": False})
CONDITIONS_ONLY = gates_validate({"workloads": False, "policies": False})


def _violation(namespace: str, name: str) -> dict[str, str]:
    return {"rule": "no-privileged", "kind": "Deployment", "namespace": namespace, "name": name}


def test_a_new_critical_violation_fails_the_policies_gate() -> None:
    # given a critical and a low-severity policy, both compliant on the cluster
    team = make_team()
    cluster = make_cluster(team=team, name="prod-1", status=ClusterStatus.READY)
    critical = policy_create(
        team=team,
        spec=PolicySpec(name="no-host-network", severity=Severity.CRITICAL, rules=[RULE]),
        actor=None,
    )
    minor = policy_create(
        team=team, spec=PolicySpec(name="labels", severity=Severity.LOW, rules=[RULE]), actor=None
    )
    before = timezone.now() - timedelta(minutes=5)
    old = [_violation("shop", "legacy")]
    make_evaluation(
        policy=critical, cluster=cluster, status="noncompliant", at=before,
        violations=old, violations_total=1,
    )  # fmt: skip
    make_evaluation(policy=minor, cluster=cluster, status="compliant", at=before)
    baseline = gate_baseline(cluster, config=POLICIES_ONLY)
    assert gate_check(cluster, baseline, config=POLICIES_ONLY) == []

    # when the low-severity policy finds something: not a critical violation
    now = timezone.now()
    make_evaluation(
        policy=minor, cluster=cluster, status="noncompliant", at=now,
        violations=[_violation("shop", "web")], violations_total=1,
    )  # fmt: skip
    assert gate_check(cluster, baseline, config=POLICIES_ONLY) == []

    # when the critical policy finds a new violating object
    make_evaluation(
        policy=critical, cluster=cluster, status="noncompliant", at=now,
        violations=[*old, _violation("shop", "web")], violations_total=2,
    )  # fmt: skip
    # then the gate names the policy, the counts and the new object
    assert gate_check(cluster, baseline, config=POLICIES_ONLY) == [
        "Critical policy no-host-network finds 2 violations on prod-1 (was 1 before the "
        "change): Deployment shop/web."
    ]
    # and a disabled policy no longer counts
    critical.enabled = False
    critical.save(update_fields=["enabled"])
    assert gate_check(cluster, baseline, config=POLICIES_ONLY) == []


def test_a_new_unhealthy_condition_fails_and_an_old_one_does_not() -> None:
    slow = {
        "type": "APIResponsive",
        "status": "False",
        "reason": "SlowAPI",
        "message": "API answered in 2400 ms",
    }
    cluster = make_cluster(
        team=make_team(), name="edge-1", status=ClusterStatus.READY, conditions=[slow]
    )
    baseline = gate_baseline(cluster, config=CONDITIONS_ONLY)
    assert baseline["conditions"] == ["APIResponsive"]
    failing = {
        "type": "PodsHealthy",
        "status": "False",
        "reason": "PodsFailing",
        "message": "4 failing or crash-looping pods of 12",
    }
    Cluster.objects.filter(pk=cluster.pk).update(conditions=[slow, failing])
    assert gate_check(cluster, baseline, config=CONDITIONS_ONLY) == [
        "edge-1 has a new unhealthy condition PodsHealthy=False (PodsFailing: 4 failing or "
        "crash-looping pods of 12)."
    ]


def _report(cluster: Cluster, deployments: tuple[int, int], daemonsets: tuple[int, int]) -> None:
    ClusterInventory.objects.update_or_create(
        cluster=cluster,
        defaults={
            "collected_at": timezone.now(),
            "data": {
                "workloads": {
                    "deployments": {"total": deployments[0], "unavailable": deployments[1]},
                    "statefulsets": {"total": 0, "unavailable": 0},
                    "daemonsets": {"total": daemonsets[0], "unavailable": daemonsets[1]},
                }
            },
        },
    )


def test_a_pull_cluster_is_judged_on_its_agent_reports() -> None:
    team = make_team()
    cluster = make_cluster(
        team=team, name="store-7", mode=ClusterMode.PULL, status=ClusterStatus.READY
    )
    shop = Application.objects.create(name="shop", team=team, namespace="shop")
    ClusterWork.objects.create(application=shop, cluster=cluster, desired_version=1)
    config = gates_validate({"policies": False, "conditions": False})
    # given what its agent reported before the change
    _report(cluster, deployments=(12, 1), daemonsets=(3, 0))
    ready = {"version": "1", "desired": 2, "available": 2, "complete": True}
    assert agent_work_report(cluster=cluster, applications={"shop": ready}) == 1
    baseline = gate_baseline(cluster, config=config)
    assert baseline["workloads"]["source"] == "agent"
    # when the agent reports the same unavailable deployment: nothing new
    assert gate_check(cluster, baseline, config=config) == []
    # when two more deployments are unavailable, a daemonset is gone and the shop lost a pod
    _report(cluster, deployments=(12, 3), daemonsets=(2, 0))
    degraded = {**ready, "available": 1, "complete": False}
    agent_work_report(cluster=cluster, applications={"shop": degraded})
    assert gate_check(cluster, baseline, config=config) == [
        "store-7 has more Deployments not fully available than before the change (1 → 3), "
        "as its agent reports.",
        "store-7 has fewer DaemonSets than before the change (3 → 2), as its agent reports.",
        "Application shop on store-7 is not fully available: its agent reports 1 of 2 "
        "replicas available (it was fully available before the change).",
    ]
