"""Team guardrails (issue 21, item 13): what an operator's applications may contain is
limited by the team's allowed namespaces and its cluster-scoped switch, checked on save
(400 naming the offending object) and at propagation (nothing applied). Only a team admin
changes the guardrails, and the change is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from applications.models import Application
from audit.models import AuditEvent
from tests.factories import add_member, make_team, make_user

API = "/api/v1/"

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
"""
# The classic escalation: an operator grants itself (or a workload) cluster-admin.
CLUSTER_ROLE = """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: escalate}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
"""
IN_KUBE_SYSTEM = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sneaky, namespace: kube-system}
data: {a: b}
"""


def api_as(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def team(db: None) -> Team:
    return make_team(name="shop")


@pytest.fixture
def operator(team: Team) -> APIClient:
    user = make_user(username="opal")
    add_member(team, user, Role.OPERATOR)
    return api_as(user)


@pytest.fixture
def admin(team: Team) -> APIClient:
    user = make_user(username="ada")
    add_member(team, user, Role.ADMIN)
    return api_as(user)


def create(client: APIClient, manifests: str, namespace: str = "shop-web") -> Any:
    return client.post(
        API + "applications/",
        {"name": "web", "team": "shop", "namespace": namespace, "manifests": manifests},
        format="json",
    )


def test_a_new_team_refuses_cluster_scoped_kinds(team: Team, operator: APIClient) -> None:
    assert (team.allowed_namespaces, team.allow_cluster_scoped) == (["*"], False)
    response = create(operator, DEPLOYMENT + CLUSTER_ROLE)
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["manifests"] == [
        "ClusterRole 'escalate' is cluster-scoped, and team shop does not allow cluster-scoped "
        "kinds."
    ]
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("ValidatingWebhookConfiguration", "intercept"),
        ("CustomResourceDefinition", "things.example.com"),
        ("ClusterIssuer", "letsencrypt"),  # a custom kind named Cluster...
        ("Namespace", "other"),
    ],
)
def test_other_cluster_scoped_kinds_are_refused(operator: APIClient, kind: str, name: str) -> None:
    manifests = DEPLOYMENT + f"---\napiVersion: x/v1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
    response = create(operator, manifests)
    assert response.status_code == 400
    assert f"{kind} {name!r} is cluster-scoped" in response.json()["error"]["message"]


def test_namespaces_outside_the_allowed_list_are_refused(
    team: Team, admin: APIClient, operator: APIClient
) -> None:
    # given: the admin narrows the team to its own namespaces
    narrowed = admin.patch(
        API + "teams/shop/guardrails/", {"allowed_namespaces": ["shop-*"]}, format="json"
    )
    assert narrowed.status_code == 200
    assert narrowed.json() == {"allowed_namespaces": ["shop-*"], "allow_cluster_scoped": False}
    # when / then: an object that names kube-system
    refused = create(operator, DEPLOYMENT + IN_KUBE_SYSTEM)
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["manifests"] == [
        "ConfigMap 'sneaky' is in namespace 'kube-system', which team shop does not allow "
        "(allowed: shop-*)."
    ]
    # an application whose own namespace is outside
    outside = create(operator, DEPLOYMENT, namespace="default")
    assert outside.status_code == 400
    assert "Namespace 'default' is not allowed for team shop" in outside.json()["error"]["message"]
    # inside is fine
    assert create(operator, DEPLOYMENT).status_code == 201


def test_a_new_version_is_checked_too(operator: APIClient) -> None:
    assert create(operator, DEPLOYMENT).status_code == 201
    response = operator.post(
        API + "applications/web/versions/", {"manifests": DEPLOYMENT + CLUSTER_ROLE}, format="json"
    )
    assert response.status_code == 400
    assert "ClusterRole 'escalate' is cluster-scoped" in response.json()["error"]["message"]
    assert Application.objects.get().versions.count() == 1


def test_only_a_team_admin_changes_the_guardrails(
    team: Team, admin: APIClient, operator: APIClient
) -> None:
    path = API + "teams/shop/guardrails/"
    # the operator tries to switch cluster-scoped kinds on for itself
    assert operator.get(path).status_code == 200
    refused = operator.patch(path, {"allow_cluster_scoped": True}, format="json")
    assert refused.status_code == 403
    team.refresh_from_db()
    assert team.allow_cluster_scoped is False
    # the admin may; the change is audited with before and after
    assert admin.patch(path, {"allow_cluster_scoped": True}, format="json").status_code == 200
    team.refresh_from_db()
    assert team.allow_cluster_scoped is True
    event = AuditEvent.objects.get(action="team.guardrails")
    assert event.actor_name == "ada"
    assert event.detail["before"]["allow_cluster_scoped"] is False
    assert event.detail["after"]["allow_cluster_scoped"] is True
    # and now the operator's ClusterRole is accepted
    assert create(operator, DEPLOYMENT + CLUSTER_ROLE).status_code == 201


@pytest.mark.parametrize("bad", [["Kube-System"], ["a/b"], "shop-*", [""], [1]])
def test_bad_guardrail_values_are_refused(team: Team, admin: APIClient, bad: Any) -> None:
    response = admin.patch(
        API + "teams/shop/guardrails/", {"allowed_namespaces": bad}, format="json"
    )
    assert response.status_code == 400
    team.refresh_from_db()
    assert team.allowed_namespaces == ["*"]


@pytest.mark.django_db(transaction=True)
def test_existing_teams_keep_cluster_scoped_kinds_after_the_migration() -> None:
    """Teams made before the guardrails existed may already deploy ClusterRoles: the
    migration keeps them on (and allows every namespace); only new teams start off."""
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    old_state = executor.loader.project_state([("accounts", "0001_initial")]).apps
    old_state.get_model("accounts", "Team").objects.create(name="veteran")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    veteran = Team.objects.get(name="veteran")
    assert (veteran.allowed_namespaces, veteran.allow_cluster_scoped) == (["*"], True)
    assert make_team(name="newcomer").allow_cluster_scoped is False
