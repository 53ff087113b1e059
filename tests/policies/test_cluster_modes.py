"""A policy's mode per cluster: the effective mode, the services that set and clear it
(validated, audited, role-checked), the end of a staged promotion, and the impact
preview read from the newest evaluations (no cluster needed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Team
from applications.models import Application, ClusterWork
from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.services.registration import ClusterFields, cluster_register_pull
from policies.choices import Mode
from policies.models import Policy, PolicyClusterMode
from policies.services.admission import enforcing_policies, policy_refusals
from policies.services.cluster_modes import (
    effective_mode,
    effective_modes,
    policy_cluster_modes_clear,
    policy_cluster_modes_set,
    policy_mode_finish,
)
from policies.services.impact import policy_enforce_impact
from policies.services.policies import PolicySpec, policy_create
from tests.factories import Member, make_cluster, make_evaluation, make_team

pytestmark = pytest.mark.django_db

NO_LATEST = {
    "name": "no-latest",
    "kind": "object",
    "match": {"kinds": ["apps/Deployment"]},
    "expression": "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
}
NETWORK_POLICY = {
    "name": "default-deny",
    "kind": "template",
    "compliance_type": "musthave",
    "object_template": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    },
}
NO_DEBUG = {
    "name": "no-debug",
    "kind": "template",
    "compliance_type": "mustnothave",
    "object_template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "debug"}},
}
VERSION = {"name": "recent", "kind": "cluster", "expression": "true"}


def _policy(team: Team, rules: list[dict[str, Any]] | None = None, **spec: Any) -> Policy:
    return policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(name="guard", rules=rules or [NO_LATEST], **spec),
    )


@pytest.fixture
def clusters(team: Team) -> list[Cluster]:
    return [make_cluster(team=team, name=n, labels={"tier": "web"}) for n in ("a", "b", "c")]


def test_the_effective_mode_is_the_override_else_the_policys_own(
    team: Team, clusters: list[Cluster]
) -> None:
    a, b, c = clusters
    policy = _policy(team)
    # given an inform policy enforcing on a only
    policy_cluster_modes_set(actor=None, policy=policy, clusters=[a], mode=Mode.ENFORCE)
    assert effective_modes([policy], [a.pk, b.pk, c.pk]) == {
        (policy.pk, a.pk): "enforce",
        (policy.pk, b.pk): "inform",
        (policy.pk, c.pk): "inform",
    }
    # the check of Keelson's own writes follows it: a's refuses a :latest image, b's not
    assert [p.name for p in enforcing_policies(a)] == ["guard"]
    assert enforcing_policies(b) == []
    latest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "web:latest"}]}}},
    }
    assert [(r.source, r.kind, r.namespace, r.name) for r in policy_refusals(a, [latest])] == [
        ("policy guard, rule no-latest", "Deployment", "shop", "web")
    ]
    assert policy_refusals(b, [latest]) == []

    # when the policy itself enforces but b is kept at inform
    Policy.objects.filter(pk=policy.pk).update(mode=Mode.ENFORCE)
    policy.refresh_from_db()
    policy_cluster_modes_set(actor=None, policy=policy, clusters=[b], mode=Mode.INFORM)

    # then a and c enforce, b does not
    assert [effective_mode(policy, x) for x in clusters] == ["enforce", "inform", "enforce"]
    assert enforcing_policies(b) == []
    assert [p.name for p in enforcing_policies(c)] == ["guard"]


def test_set_refuses_bad_input_naming_the_field_and_changes_nothing(
    team: Team, clusters: list[Cluster], owner: Member
) -> None:
    a = clusters[0]
    untargeted = make_cluster(team=team, name="batch-1", labels={"tier": "batch"})
    theirs = make_cluster(team=make_team(name="other"), name="theirs")
    policy = _policy(team, cluster_selector="tier=web")
    cases: list[tuple[list[Cluster], str, str, str, str]] = [
        ([a], "block", "", "mode", "Use one of inform, enforce."),
        ([], "enforce", "", "clusters", "Name at least one cluster."),
        ([theirs], "enforce", "", "clusters", "No such cluster in team payments: theirs."),
        (
            [a, untargeted],
            "enforce",
            "",
            "clusters",
            "Not targeted by policy guard (outside its scope): batch-1.",
        ),
        ([a], "enforce", "x" * 501, "reason", "At most 500 characters."),
    ]
    for chosen, mode, reason, field, message in cases:
        with pytest.raises(ValidationError) as refused:
            policy_cluster_modes_set(
                actor=owner.user, policy=policy, clusters=chosen, mode=mode, reason=reason
            )
        assert refused.value.message_dict == {field: [message]}
    assert not PolicyClusterMode.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="policy.cluster_modes").exists()


def test_enforcing_on_a_cluster_needs_the_enforce_role_and_is_audited(
    team: Team, clusters: list[Cluster], owner: Member, operator: Member, outsider: Member
) -> None:
    a, b, _ = clusters
    policy = _policy(team)
    # an operator may not turn enforcement on, nor may an admin of another team
    for refused in (operator, outsider):
        with pytest.raises(PermissionDenied):
            policy_cluster_modes_set(
                actor=refused.user, policy=policy, clusters=[a], mode=Mode.ENFORCE
            )
    assert not PolicyClusterMode.objects.exists()

    # the team's admin may, and it is recorded with who, where and why
    policy_cluster_modes_set(
        actor=owner.user, policy=policy, clusters=[b, a], mode=Mode.ENFORCE, reason="canary"
    )
    row = PolicyClusterMode.objects.get(policy=policy, cluster=a)
    assert (row.mode, row.set_by, row.reason) == ("enforce", owner.user, "canary")
    event = AuditEvent.objects.get(action="policy.cluster_modes.set")
    assert event.actor == owner.user
    assert event.detail == {"clusters": ["a", "b"], "mode": "enforce", "reason": "canary"}

    # an operator may set a cluster back to inform; setting again replaces the override
    policy_cluster_modes_set(actor=operator.user, policy=policy, clusters=[a], mode=Mode.INFORM)
    assert PolicyClusterMode.objects.get(policy=policy, cluster=a).mode == "inform"
    assert PolicyClusterMode.objects.filter(policy=policy).count() == 2


def test_clear_returns_clusters_to_the_policys_mode(
    team: Team, clusters: list[Cluster], operator: Member, outsider: Member
) -> None:
    a, b, _ = clusters
    policy = _policy(team)
    policy_cluster_modes_set(actor=None, policy=policy, clusters=[a, b], mode=Mode.ENFORCE)
    with pytest.raises(PermissionDenied):
        policy_cluster_modes_clear(actor=outsider.user, policy=policy, clusters=[a])

    # an operator may stop enforcement of an inform policy on a cluster
    cleared = policy_cluster_modes_clear(
        actor=operator.user, policy=policy, clusters=[a], reason="too early"
    )

    assert cleared == 1
    assert effective_modes([policy], [a.pk, b.pk]) == {
        (policy.pk, a.pk): "inform",
        (policy.pk, b.pk): "enforce",
    }
    event = AuditEvent.objects.get(action="policy.cluster_modes.clear")
    assert event.detail == {"clusters": ["a"], "mode": "inform", "reason": "too early"}
    # nothing left to clear: nothing recorded
    assert policy_cluster_modes_clear(actor=None, policy=policy, clusters=[a]) == 0
    assert AuditEvent.objects.filter(action="policy.cluster_modes.clear").count() == 1


def test_finish_makes_the_mode_the_policys_own_and_changes_no_clusters_mode(
    team: Team, clusters: list[Cluster], owner: Member
) -> None:
    a, b, _ = clusters
    policy = _policy(team)
    # given a promotion that reached a and b (c was skipped)
    policy_cluster_modes_set(actor=owner.user, policy=policy, clusters=[a, b], mode=Mode.ENFORCE)

    policy_mode_finish(actor=owner.user, policy=policy, mode=Mode.ENFORCE, clusters=[a, b])

    policy.refresh_from_db()
    assert (policy.mode, policy.enforced_by) == ("enforce", owner.user)
    # a and b follow the policy now; c keeps inform through an override
    assert list(PolicyClusterMode.objects.values_list("cluster__name", "mode")) == [("c", "inform")]
    assert [effective_mode(policy, x) for x in clusters] == ["enforce", "enforce", "inform"]
    event = AuditEvent.objects.get(action="policy.mode.finish")
    assert event.detail["cleared"] == ["a", "b"] and event.detail["kept"] == ["c"]
    assert (event.detail["mode"], event.detail["previous"]) == ("enforce", "inform")


def test_the_impact_names_what_enforcement_would_remediate_or_deny(
    team: Team, clusters: list[Cluster], viewer: Member
) -> None:
    a, b, c = clusters
    policy = _policy(team, rules=[NO_LATEST, NETWORK_POLICY, NO_DEBUG, VERSION])
    # given application shop wrote Deployment shop/web to a
    shop = Application.objects.create(team=team, name="shop", namespace="shop")
    ClusterWork.objects.create(
        application=shop,
        cluster=a,
        desired_version=1,
        applied_objects=[
            {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"}
        ],
    )

    def violation(rule: str, kind: str, namespace: str, name: str) -> dict[str, str]:
        return {"rule": rule, "kind": kind, "namespace": namespace, "name": name}

    now = timezone.now()
    # an older result of a, then its newest one
    make_evaluation(
        policy=policy,
        cluster=a,
        status="noncompliant",
        at=now - timedelta(hours=1),
        violations=[violation("no-debug", "ConfigMap", "old", "debug")],
        violations_total=1,
    )
    make_evaluation(
        policy=policy,
        cluster=a,
        status="noncompliant",
        at=now,
        violations=[
            violation("no-latest", "Deployment", "shop", "web"),  # Keelson's: denied
            violation("no-latest", "Deployment", "tools", "kubectl-made"),  # reported
            {**violation("no-latest", "Pod", "shop", "web-1"), "controller": "Deployment/web"},
            violation("default-deny", "NetworkPolicy", "shop", "default-deny"),  # applied
            violation("no-debug", "ConfigMap", "tools", "debug"),  # deleted
            violation("recent", "Cluster", "", "a"),  # reported
        ],
        violations_total=6,
    )
    make_evaluation(policy=policy, cluster=b, status="compliant", at=now)

    impact = {
        name: i.as_json()
        for name, i in policy_enforce_impact(policy=policy, clusters=[a, b, c]).items()
    }

    assert impact["a"]["count"] == 4
    assert (impact["a"]["remediated"], impact["a"]["denied"], impact["a"]["reported"]) == (2, 2, 2)
    assert [
        (o["effect"], o["kind"], o["namespace"], o["name"], o["application"])
        for o in impact["a"]["objects"]
    ] == [
        ("deny", "Deployment", "shop", "web", "shop"),
        ("deny", "Pod", "shop", "web-1", "shop"),
        ("apply", "NetworkPolicy", "shop", "default-deny", ""),
        ("delete", "ConfigMap", "tools", "debug", ""),
    ]
    assert (impact["b"]["status"], impact["b"]["count"], impact["b"]["objects"]) == (
        "compliant",
        0,
        [],
    )
    assert (impact["c"]["status"], impact["c"]["note"]) == ("", "not evaluated yet")
    # the API answers the same, for every targeted cluster or the named ones
    path = "/api/v1/policies/guard/enforce-impact/"
    assert viewer.api.get(path).json() == [impact["a"], impact["b"], impact["c"]]
    assert viewer.api.get(path, {"cluster": "b"}).json() == [impact["b"]]
    unknown = viewer.api.get(path, {"cluster": ["b", "zz"]})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["fields"] == {"cluster": ["Not targeted by policy guard: zz."]}


def _agent(team: Team, name: str) -> tuple[Cluster, APIClient]:
    """A pull cluster and its enrolled agent's client."""
    cluster, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name=name, team=team, labels={"tier": "web"})
    )
    enrolled = APIClient().post("/api/v1/agent/enroll", {"bootstrap_token": bootstrap})
    assert enrolled.status_code == 201, enrolled.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {enrolled.json()['agent_token']}")
    return cluster, client


def test_a_pull_clusters_agent_is_given_the_policys_mode_on_its_cluster(team: Team) -> None:
    # given an inform policy enforcing on edge-1 only
    (edge1, agent1), (_, agent2) = _agent(team, "edge-1"), _agent(team, "edge-2")
    policy = _policy(team, rules=[NO_DEBUG])
    policy_cluster_modes_set(actor=None, policy=policy, clusters=[edge1], mode=Mode.ENFORCE)

    # when each agent asks for its policies
    given = {
        name: client.get("/api/v1/agent/policies").json()["policies"]
        for name, client in (("edge-1", agent1), ("edge-2", agent2))
    }

    # then edge-1's agent enforces it, edge-2's only reports
    assert [(p["name"], p["mode"]) for p in given["edge-1"]] == [("guard", "enforce")]
    assert [(p["name"], p["mode"]) for p in given["edge-2"]] == [("guard", "inform")]
    # and only the enforcing cluster's remediation is recorded
    action = {
        "policy": policy.pk,
        "rule": "no-debug",
        "action": "delete",
        "status": "succeeded",
        "target": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "x", "name": "debug"},
    }
    report = {"results": [{"policy": policy.pk, "generation": 1}], "actions": [action]}
    for client in (agent1, agent2):
        assert client.post("/api/v1/agent/policies", report, format="json").status_code == 200
    assert list(policy.actions.values_list("cluster__name", flat=True)) == ["edge-1"]


def test_the_policy_page_and_api_show_where_the_mode_differs(
    team: Team, clusters: list[Cluster], owner: Member, viewer: Member
) -> None:
    a, b, _ = clusters
    policy = _policy(team)
    policy_cluster_modes_set(
        actor=owner.user, policy=policy, clusters=[a], mode=Mode.ENFORCE, reason="canary"
    )
    for cluster in (a, b):
        make_evaluation(policy=policy, cluster=cluster, status="compliant", at=timezone.now())

    shown = viewer.api.get("/api/v1/policies/guard/").json()
    assert shown["mode"] == "inform"
    assert [
        (m["cluster"], m["mode"], m["set_by"], m["reason"]) for m in shown["cluster_modes"]
    ] == [("a", "enforce", owner.user.username, "canary")]
    page = viewer.page.get("/policies/payments/guard/").content.decode()
    assert "enforce on a</span>" in page
    rows = page.split('data-field="mode">')[1:]
    assert [row.split("<", 1)[0] for row in rows] == ["enforce", "inform"]


def test_the_api_sets_and_removes_cluster_modes_with_the_right_role(
    team: Team, clusters: list[Cluster], owner: Member, operator: Member
) -> None:
    a, b, _ = clusters
    _policy(team)
    theirs = make_cluster(team=make_team(name="other"), name="theirs")
    path = "/api/v1/policies/guard/cluster-modes/"

    # an operator may not enforce; bad input is a 400 naming the field, changing nothing
    refused = operator.api.post(path, {"clusters": ["a"], "mode": "enforce"}, format="json")
    assert refused.status_code == 403
    for body, field, message in (
        ({"clusters": ["a", theirs.name]}, "mode", "This field is required."),
        (
            {"clusters": ["a", theirs.name], "mode": "enforce"},
            "clusters",
            "No such cluster in team payments: theirs.",
        ),
        ({"clusters": [], "mode": "enforce"}, "clusters", "Ensure this field has at least 1"),
    ):
        bad = owner.api.post(path, body, format="json")
        assert bad.status_code == 400, bad.content
        assert message in str(bad.json()["error"]["fields"][field]), bad.json()
    assert not PolicyClusterMode.objects.exists()

    # the admin enforces on a and b; an operator keeps b at inform, then lets it follow
    done = owner.api.post(path, {"clusters": ["a", "b"], "mode": "enforce"}, format="json")
    assert done.status_code == 200, done.content
    assert [(m["cluster"], m["mode"]) for m in done.json()["cluster_modes"]] == [
        ("a", "enforce"),
        ("b", "enforce"),
    ]
    kept = operator.api.post(
        path, {"clusters": ["b"], "mode": "inform", "reason": "noisy"}, format="json"
    )
    assert kept.status_code == 200
    followed = operator.api.post(path, {"clusters": ["b"], "mode": "policy"}, format="json")
    assert [(m["cluster"], m["mode"]) for m in followed.json()["cluster_modes"]] == [
        ("a", "enforce")
    ]
    assert [effective_mode(Policy.objects.get(name="guard"), x) for x in (a, b)] == [
        "enforce",
        "inform",
    ]
