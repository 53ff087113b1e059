"""Issue 21 #8: an operator cannot get around admin-only enforcement by saving a policy in
enforce mode (API or page), and every enforcement records who caused it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from audit.models import AuditEvent
from localkube.env import LocalCluster
from policies.choices import Mode, ResultStatus
from policies.models import EnforcementAction, Policy
from policies.services.enforcement import clusters_enforce
from policies.services.evaluation import cluster_evaluate
from tests.clusters.helpers import register_local
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db


def _delete_victim(namespace: str) -> dict[str, Any]:
    """The attack's rule: delete ConfigMap `victim` in `namespace`."""
    return {
        "name": "remove-victim",
        "kind": "template",
        "compliance_type": "mustnothave",
        "match": {"namespaces": [namespace]},
        "object_template": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "victim"},
        },
    }


def _body(mode: str, namespace: str = "kube-system") -> dict[str, Any]:
    rules = [_delete_victim(namespace)]
    return {"name": "sneaky", "team": "payments", "mode": mode, "rules": rules}


@pytest.fixture
def team() -> Team:
    return make_team(name="payments")


def _member(team: Team, role: Role) -> Any:
    user = make_user()
    add_member(team, user, role)
    return user


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_operator_cannot_create_an_enforcing_policy(team: Team) -> None:
    operator = _api(_member(team, Role.OPERATOR))

    # when the operator creates the attack policy straight in enforce mode
    response = operator.post("/api/v1/policies/", _body("enforce"), format="json")

    # then 403 in the JSON shape, nothing is stored (so nothing can enforce), refusal audited
    assert response.status_code == 403, response.content
    assert "admin role" in response.json()["error"]["message"]
    assert not Policy.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", outcome="denied").exists()


def test_an_operator_cannot_switch_a_policy_to_enforce_or_change_an_enforcing_one(
    team: Team,
) -> None:
    operator = _api(_member(team, Role.OPERATOR))
    admin = _api(_member(team, Role.ADMIN))
    assert operator.post("/api/v1/policies/", _body("inform"), format="json").status_code == 201

    # switching to enforce is refused and the policy stays inform
    switched = operator.patch("/api/v1/policies/sneaky/", {"mode": "enforce"}, format="json")
    assert switched.status_code == 403
    assert Policy.objects.get().mode == Mode.INFORM

    # an admin may; then the operator may not change what the enforcing policy deletes
    enforced = admin.patch("/api/v1/policies/sneaky/", {"mode": "enforce"}, format="json")
    assert enforced.status_code == 200
    changed = operator.patch(
        "/api/v1/policies/sneaky/", {"rules": [_delete_victim("default")]}, format="json"
    )
    assert changed.status_code == 403
    assert Policy.objects.get().rules.get().match == {"namespaces": ["kube-system"]}

    # but an operator may turn enforcement off (inform only reports)
    off = operator.patch("/api/v1/policies/sneaky/", {"mode": "inform"}, format="json")
    assert off.status_code == 200
    policy = Policy.objects.get()
    assert (policy.mode, policy.enforced_by_id) == (Mode.INFORM, None)


def test_the_policy_page_refuses_enforce_mode_to_an_operator(team: Team) -> None:
    page = Client()
    page.force_login(_member(team, Role.OPERATOR))
    form = {
        "team": "payments",
        "name": "sneaky",
        "severity": "high",
        "mode": "enforce",
        "enabled": "on",
        "rules": (
            "- name: remove-victim\n  kind: template\n  compliance_type: mustnothave\n"
            "  match: {namespaces: [kube-system]}\n"
            "  object_template: {apiVersion: v1, kind: ConfigMap, metadata: {name: victim}}\n"
        ),
    }

    response = page.post("/policies/new/", form)

    assert response.status_code == 403
    assert "admin role" in response.content.decode()
    assert not Policy.objects.exists()


@pytest.mark.kube
def test_sweep_enforcement_is_recorded_as_the_admin_who_set_enforce(
    kube_cluster: LocalCluster, team: Team
) -> None:
    # given a ConfigMap `victim` and an admin's enforcing policy that removes it
    api = kube_cluster.control_plane.api_client()
    core = k8s.CoreV1Api(api)
    namespace = f"auth-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "victim"}})
    cluster = register_local(kube_cluster, team=team, name=f"auth-{uuid.uuid4().hex[:6]}")
    admin_user = _member(team, Role.ADMIN)
    created = _api(admin_user).post("/api/v1/policies/", _body("enforce", namespace), format="json")
    assert created.status_code == 201, created.content
    policy = Policy.objects.get()
    try:
        # when the sweep evaluates (noncompliant) and enforces, with no user in the loop
        [result] = cluster_evaluate(cluster=cluster, policy_ids=[policy.pk], force=True)
        assert result.status == ResultStatus.NONCOMPLIANT
        assert clusters_enforce(cluster_ids=[cluster.pk]) == 1

        # then the ConfigMap is gone and both the action and the audit name the admin
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_config_map("victim", namespace)
        assert gone.value.status == 404
        action = EnforcementAction.objects.get(policy=policy)
        assert action.actor_id == admin_user.pk
        event = AuditEvent.objects.get(action="policy.enforce")
        assert (event.actor_id, event.actor_name) == (admin_user.pk, admin_user.username)
        assert event.detail["trigger"] == "sweep"
    finally:
        core.delete_namespace(namespace)
