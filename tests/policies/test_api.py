"""Policies API: validation (CEL positions), team scoping, history filters, compliance."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Team
from audit.models import AuditEvent
from localkube.env import LocalCluster
from policies.models import Policy, PolicyEvaluation
from tests.clusters.helpers import register_local
from tests.factories import Member, make_cluster, make_evaluation

pytestmark = pytest.mark.django_db

RULE = {
    "name": "no-host-network",
    "kind": "object",
    "match": {"kinds": ["Pod"]},
    "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    "message": "hostNetwork is not allowed",
}


def _create(client: APIClient, **extra: Any) -> Any:
    body = {"name": "host-net", "team": "payments", "severity": "high", "rules": [RULE], **extra}
    return client.post("/api/v1/policies/", body, format="json")


def test_bad_cel_is_refused_with_its_position_and_nothing_is_saved(operator: Member) -> None:
    # when a policy with a broken expression is created
    broken = {**RULE, "expression": "object.spec.hostNetwork ==== true"}
    response = _create(operator.api, rules=[broken])

    # then 400 says which rule, where and why; nothing is stored or audited as created
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"] == (
        "rules: rule 'no-host-network': Invalid CEL at line 1, column 27: unexpected '=='."
    )
    assert not Policy.objects.exists()
    assert not AuditEvent.objects.filter(action="policy.create").exists()


def test_bad_cel_in_a_change_is_refused_and_the_policy_is_unchanged(operator: Member) -> None:
    assert _create(operator.api).status_code == 201
    broken = {**RULE, "expression": "object.spec.containers.all(c, "}
    response = operator.api.patch("/api/v1/policies/host-net/", {"rules": [broken]}, format="json")
    assert response.status_code == 400
    assert "Invalid CEL at line 1, column" in response.json()["error"]["message"]
    policy = Policy.objects.get()
    assert policy.generation == 1
    assert policy.rules.get().expression == RULE["expression"]


def test_create_read_change_delete(operator: Member, team: Team) -> None:
    # given a created policy
    created = _create(operator.api, standards=["cis-5.2.4"], cluster_selector="env=prod")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["team"] == "payments"
    assert body["generation"] == 1
    assert body["rules"][0]["expression"] == RULE["expression"]

    # when changed, then the generation grows; an unchanged PATCH keeps it
    changed = operator.api.patch("/api/v1/policies/host-net/", {"severity": "low"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["generation"] == 2
    same = operator.api.patch("/api/v1/policies/host-net/", {"severity": "low"}, format="json")
    assert same.json()["generation"] == 2

    listed = operator.api.get("/api/v1/policies/?standard=cis-5.2.4").json()
    assert [p["name"] for p in listed["results"]] == ["host-net"]
    assert operator.api.delete("/api/v1/policies/host-net/").status_code == 204
    assert not Policy.objects.filter(team=team).exists()


def test_a_bad_selector_or_template_is_refused(operator: Member) -> None:
    response = _create(operator.api, cluster_selector="env in (")
    assert response.status_code == 400
    assert "cluster_selector" in response.json()["error"]["fields"]
    template = {
        "name": "t",
        "kind": "template",
        "compliance_type": "musthave",
        "object_template": {"kind": "X"},
    }
    response = _create(operator.api, rules=[template])
    assert response.status_code == 400
    assert "needs apiVersion" in response.json()["error"]["message"]


def test_outsiders_cannot_see_or_change_and_viewers_cannot_change(
    operator: Member, outsider: Member, viewer: Member
) -> None:
    assert _create(operator.api).status_code == 201
    other = outsider.api

    # an outsider sees nothing and can touch nothing
    assert other.get("/api/v1/policies/").json()["results"] == []
    assert other.get("/api/v1/policies/host-net/").status_code == 404
    assert (
        other.patch("/api/v1/policies/host-net/", {"mode": "enforce"}, format="json").status_code
        == 404
    )
    assert other.delete("/api/v1/policies/host-net/").status_code == 404
    assert other.post("/api/v1/policies/host-net/evaluate/").status_code == 404
    assert other.post("/api/v1/policies/host-net/preview-enforcement/").status_code == 404
    # nor create in the team
    created = _create(other, name="sneaky")
    assert created.status_code == 403  # the same answer as for a team that does not exist
    assert "no role in a team named 'payments'" in created.json()["error"]["message"]
    # a viewer reads but cannot change
    assert viewer.api.get("/api/v1/policies/host-net/").status_code == 200
    refused = viewer.api.patch("/api/v1/policies/host-net/", {"mode": "enforce"}, format="json")
    assert refused.status_code == 403
    assert viewer.api.delete("/api/v1/policies/host-net/").status_code == 403
    assert viewer.api.post("/api/v1/policies/host-net/evaluate/").status_code == 403
    assert Policy.objects.get().mode == "inform"
    assert AuditEvent.objects.filter(outcome="denied").count() >= 3


def test_history_filters_and_compliance_summary(
    operator: Member, outsider: Member, team: Team
) -> None:
    # given two clusters and results over time (older ones superseded)
    assert _create(operator.api, standards=["pss-baseline"]).status_code == 201
    policy = Policy.objects.get()
    eu, us = make_cluster(team=team, name="eu-1"), make_cluster(team=team, name="us-1")
    now = timezone.now()

    def result(cluster: Any, status: str, minutes_ago: int) -> None:
        make_evaluation(
            policy=policy,
            cluster=cluster,
            status=status,
            at=now - timedelta(minutes=minutes_ago),
        )

    result(eu, "noncompliant", 30)
    result(eu, "compliant", 10)
    result(us, "compliant", 20)
    result(us, "noncompliant", 5)

    # then the history keeps every row and filters by cluster and status
    everything = operator.api.get("/api/v1/policy-evaluations/").json()
    assert everything["count"] == 4
    eu_rows = operator.api.get("/api/v1/policy-evaluations/?cluster=eu-1").json()["results"]
    assert [r["status"] for r in eu_rows] == ["compliant", "noncompliant"]
    bad = operator.api.get("/api/v1/policy-evaluations/?status=noncompliant&policy=host-net").json()
    assert bad["count"] == 2
    assert outsider.api.get("/api/v1/policy-evaluations/").json()["count"] == 0

    # and the summary counts only the newest result per cluster
    summary = operator.api.get("/api/v1/compliance/").json()
    assert summary["overall"]["compliant"] == 1
    assert summary["overall"]["noncompliant"] == 1
    assert summary["overall"]["percent"] == 50.0
    assert summary["standards"]["pss-baseline"]["percent"] == 50.0
    latest = operator.api.get("/api/v1/policies/host-net/results/").json()
    assert {(r["cluster"], r["status"]) for r in latest} == {
        ("eu-1", "compliant"),
        ("us-1", "noncompliant"),
    }
    assert outsider.api.get("/api/v1/compliance/").json()["overall"]["percent"] is None


@pytest.mark.kube
def test_evaluate_and_preview_against_a_real_cluster(
    kube_cluster: LocalCluster, operator: Member, team: Team
) -> None:
    # given a registered cluster and a policy requiring a ConfigMap in kube-public
    register_local(kube_cluster, team=team, name=f"api-{uuid.uuid4().hex[:6]}")
    template = {
        "name": "marker",
        "kind": "template",
        "compliance_type": "musthave",
        "object_template": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "keelson-marker", "namespace": "kube-public"},
            "data": {"owner": "payments"},
        },
    }
    assert _create(operator.api, rules=[RULE, template]).status_code == 201

    # when evaluated and previewed through the API
    evaluated = operator.api.post("/api/v1/policies/host-net/evaluate/")
    preview = operator.api.post("/api/v1/policies/host-net/preview-enforcement/")

    # then the result names the missing object and the preview would create it
    assert evaluated.status_code == 200, evaluated.content
    [row] = evaluated.json()
    assert row["status"] == "noncompliant"
    assert {"rule": "marker", "kind": "ConfigMap", "namespace": "kube-public"}.items() <= (
        row["violations"][0].items()
    )
    [plan] = preview.json()
    assert plan["actions"] == [
        {
            "rule": "marker",
            "action": "apply",
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "kube-public",
            "name": "keelson-marker",
            "reason": "ConfigMap keelson-marker is missing in namespace kube-public",
        }
    ]
    assert not PolicyEvaluation.objects.filter(status="error").exists()


def test_list_endpoints_keep_a_query_budget(
    operator: Member, team: Team, django_assert_max_num_queries: Any
) -> None:
    # given several policies with results
    for index in range(5):
        assert _create(operator.api, name=f"p-{index}").status_code == 201
    cluster = make_cluster(team=team, name="eu-1")
    for policy in Policy.objects.all():
        PolicyEvaluation.objects.create(
            policy=policy,
            cluster=cluster,
            run_id=uuid.uuid4(),
            status="compliant",
            policy_generation=1,
            evaluated_at=timezone.now(),
        )
    # then listing them costs the same as listing one
    with django_assert_max_num_queries(8):
        assert len(operator.api.get("/api/v1/policies/").json()["results"]) == 5
    with django_assert_max_num_queries(6):
        assert operator.api.get("/api/v1/policy-evaluations/").json()["count"] == 5


def test_a_policy_can_target_where_an_application_runs(operator: Member, team: Team) -> None:
    from applications.models import ClusterWork
    from applications.services import application_create
    from policies.services.evaluation import policy_clusters
    from tests.placement.test_pages import MANIFESTS

    # given an application running on one of the team's two clusters
    eu, _us = make_cluster(team=team, name="eu-1"), make_cluster(team=team, name="us-1")
    application = application_create(
        actor=None, team=team, name="shop", namespace="shop", manifests=MANIFESTS
    )
    ClusterWork.objects.create(application=application, cluster=eu, desired_version=1)
    # an unknown application is refused, naming the field
    refused = _create(operator.api, placement="nope")
    assert refused.status_code == 400
    assert "No application named nope" in refused.content.decode()
    # when a policy targets the application's placement
    created = _create(operator.api, placement="shop")
    assert created.status_code == 201, created.content
    assert created.json()["placement"] == "shop"
    policy = Policy.objects.get(name="host-net")
    # then it covers only where the application runs, and nothing once it is gone
    assert list(policy_clusters(policy=policy).values_list("name", flat=True)) == ["eu-1"]
    application.delete()
    assert not policy_clusters(policy=policy).exists()


def test_deleting_a_policy_keeps_its_history(operator: Member, team: Team) -> None:
    # given a policy with a result
    assert _create(operator.api).status_code == 201
    policy = Policy.objects.get(name="host-net")
    PolicyEvaluation.objects.create(
        policy=policy,
        cluster=make_cluster(team=team, name="eu-1"),
        run_id=uuid.uuid4(),
        status="noncompliant",
        policy_generation=1,
        evaluated_at=timezone.now(),
    )
    # when it is deleted
    assert operator.api.delete("/api/v1/policies/host-net/").status_code == 204
    # then it is gone from the policies, not evaluated any more, and its name is free
    assert operator.api.get("/api/v1/policies/host-net/").status_code == 404
    assert operator.api.get("/api/v1/policies/").json()["count"] == 0
    assert not Policy.objects.filter(pk=policy.pk).exists()
    assert Policy.all_objects.get(pk=policy.pk).enabled is False
    # and its results stay in the history
    history = operator.api.get("/api/v1/policy-evaluations/?policy=host-net").json()
    assert history["count"] == 1
    assert history["results"][0]["status"] == "noncompliant"
    assert _create(operator.api).status_code == 201  # the name can be used again
