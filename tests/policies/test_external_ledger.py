"""How engine results land in the ledger across collections: several clusters of a team
share one external policy, a policy gone from every cluster is marked gone and comes
back, a cluster whose engines cannot be read, and names already taken. The reads are
built as `read_engines` builds them (the kube-apiserver path is in
test_external_kube.py)."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from kube.client import ClusterConnectError
from policies.external.parsing import CONSTRAINT_GROUP, REPORT_GROUP
from policies.external.reading import EngineRead
from policies.models import Policy, PolicyEvaluation
from policies.selectors import compliance_summary
from policies.services.external import NOT_REPORTED, cluster_record_external
from policies.services.policies import PolicySpec, policy_create
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


def _report(*results: tuple[str, str, str]) -> dict[str, Any]:
    """A PolicyReport with (policy, result, pod) results from Kyverno."""
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "polr-ns-shop", "namespace": "shop"},
        "results": [
            {
                "source": "kyverno",
                "policy": policy,
                "rule": "check",
                "result": result,
                "message": f"{policy} {result}",
                "resources": [
                    {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "shop"}
                ],
            }
            for policy, result, pod in results
        ],
    }


def _read(*results: tuple[str, str, str]) -> EngineRead:
    return EngineRead(groups=[REPORT_GROUP], reports=[_report(*results)] if results else [])


def _policy(team: Team, name: str) -> Policy:
    return Policy.objects.get(team=team, source_engine="kyverno", source_name=name)


def _newest(policy: Policy, cluster: Any) -> PolicyEvaluation:
    row = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).first()
    return row or pytest.fail("no result")


def test_clusters_of_a_team_share_one_external_policy_with_a_result_each(team: Team) -> None:
    one, two = make_cluster(team=team), make_cluster(team=team)
    assert cluster_record_external(cluster=one, read=_read(("labels", "fail", "a"))) == 1
    assert cluster_record_external(cluster=two, read=_read(("labels", "pass", "a"))) == 1
    policy = _policy(team, "labels")
    assert Policy.objects.filter(team=team).exclude(source_engine="").count() == 1
    assert (_newest(policy, one).status, _newest(policy, two).status) == (
        "noncompliant",
        "compliant",
    )
    summary = compliance_summary(Policy.objects.filter(pk=policy.pk))
    assert summary.overall["percent"] == 50.0
    # created once, audited once, as the system (no user)
    created = AuditEvent.objects.filter(action="policy.external.create", target_id=str(policy.pk))
    assert created.count() == 1 and created.get().actor_id is None


def test_a_policy_no_cluster_reports_is_gone_then_back(team: Team) -> None:
    one, two = make_cluster(team=team), make_cluster(team=team)
    for cluster in (one, two):
        cluster_record_external(cluster=cluster, read=_read(("labels", "pass", "a")))
    policy = _policy(team, "labels")
    # when the first cluster stops reporting it, it is "no longer reported" there only
    cluster_record_external(cluster=one, read=_read())
    assert (_newest(policy, one).status, _newest(policy, one).message) == ("error", NOT_REPORTED)
    policy.refresh_from_db()
    assert policy.gone_at is None
    # when the second does too, the policy is gone, its history kept
    cluster_record_external(cluster=two, read=_read())
    policy.refresh_from_db()
    assert policy.gone_at is not None
    assert PolicyEvaluation.objects.filter(policy=policy).count() == 4
    # a further read of the empty clusters writes nothing
    assert cluster_record_external(cluster=two, read=_read()) == 0
    # reported again, it is back with its new result
    assert cluster_record_external(cluster=one, read=_read(("labels", "fail", "b"))) == 1
    policy.refresh_from_db()
    assert policy.gone_at is None
    assert _newest(policy, one).status == "noncompliant"
    actions = AuditEvent.objects.filter(target_id=str(policy.pk)).values_list("action", flat=True)
    assert set(actions) == {
        "policy.external.create",
        "policy.external.gone",
        "policy.external.returned",
    }


def test_a_cluster_that_cannot_be_read_gets_an_error_for_what_it_reported(team: Team) -> None:
    cluster, other = make_cluster(team=team), make_cluster(team=team)
    cluster_record_external(cluster=cluster, read=_read(("labels", "pass", "a")))
    cluster_record_external(cluster=other, read=_read(("probes", "pass", "a")))
    failure = ClusterConnectError("unreachable", "Cannot connect to https://10.0.0.1:6443.")
    assert cluster_record_external(cluster=cluster, read=failure) == 1
    row = _newest(_policy(team, "labels"), cluster)
    assert row.status == "error"
    assert row.message == (
        "The engines' results could not be read: Cannot connect to https://10.0.0.1:6443."
    )
    # nothing is written for a policy the cluster never reported
    assert not PolicyEvaluation.objects.filter(policy=_policy(team, "probes"), cluster=cluster)


def test_a_taken_name_gets_a_hash_and_keelson_policies_are_untouched(
    team: Team, operator: Any
) -> None:
    rule = {"name": "r", "kind": "object", "match": {"kinds": ["Pod"]}, "expression": "true"}
    own = policy_create(
        team=team, spec=PolicySpec(name="kyverno-labels", rules=[rule]), actor=operator.user
    )
    cluster = make_cluster(team=team)
    cluster_record_external(cluster=cluster, read=_read(("labels", "fail", "a")))
    external = _policy(team, "labels")
    assert external.name.startswith("kyverno-labels-") and external.name != own.name
    assert not PolicyEvaluation.objects.filter(policy=own).exists()
    assert external.mode == "inform" and external.rules.count() == 0


def test_gatekeeper_and_reports_of_one_cluster_together(team: Team) -> None:
    cluster = make_cluster(team=team)
    constraint = {
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sRequiredLabels",
        "metadata": {"name": "owner"},
        "spec": {},
        "status": {"auditTimestamp": "2026-12-05T12:00:00Z", "totalViolations": 0},
    }
    read = EngineRead(
        groups=[REPORT_GROUP, CONSTRAINT_GROUP],
        reports=[_report(("labels", "pass", "a"))],
        constraints=[constraint],
    )
    assert cluster_record_external(cluster=cluster, read=read) == 2
    names = set(
        Policy.objects.filter(team=team)
        .exclude(source_engine="")
        .values_list("name", "source_engine")
    )
    assert names == {
        ("kyverno-labels", "kyverno"),
        ("gatekeeper-k8srequiredlabels-owner", "gatekeeper"),
    }
    # the same read again: nothing new
    assert cluster_record_external(cluster=cluster, read=read) == 0
    assert PolicyEvaluation.objects.filter(cluster=cluster).count() == 2
