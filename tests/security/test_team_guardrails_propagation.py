"""Guardrails at propagation: a version saved while the team allowed it, or an override
that moves an object, must not reach a cluster once the team's guardrails refuse it —
push clusters get nothing applied, pull agents get nothing to apply."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.choices import Role
from accounts.models import Team
from accounts.services import team_guardrails_set
from applications import propagation
from applications.models import Application, ClusterWork, WorkState
from applications.propagation import agent_work, work_render, work_sync, work_target
from applications.services import application_create
from clusters.choices import ClusterMode
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: [{apiGroups: [""], resources: ["pods"], verbs: ["get"]}]
"""


@pytest.fixture
def world() -> tuple[Team, Any, Application]:
    team = make_team(name="shop")
    admin = make_user(username="ada")
    add_member(team, admin, Role.ADMIN)
    team = team_guardrails_set(team=team, actor=admin, allow_cluster_scoped=True)
    application = application_create(
        actor=admin, team=team, name="web", namespace="shop-web", manifests=MANIFESTS
    )
    return team, admin, application


def test_a_version_saved_before_the_guardrails_narrowed_is_not_applied(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, admin, application = world
    cluster = make_cluster(team=team, name="prod-1")
    work = work_target(application=application, cluster=cluster, version=1, replicas=None)
    assert [o["kind"] for o in work_render(work)] == ["Namespace", "ConfigMap", "ClusterRole"]
    applied: list[Any] = []
    monkeypatch.setattr(propagation, "apply_objects", lambda *a, **k: applied.append(a))
    monkeypatch.setattr(propagation, "cluster_api_client", lambda **k: object())
    # when: the admin switches cluster-scoped kinds off, then the work syncs
    team_guardrails_set(team=team, actor=admin, allow_cluster_scoped=False)
    outcome = work_sync(work)
    # then
    assert not outcome.ok and applied == []
    work.refresh_from_db()
    assert work.state == WorkState.FAILED
    assert work.message == (
        "refused by the team's guardrails: ClusterRole 'reader' is cluster-scoped, and team "
        "shop does not allow cluster-scoped kinds."
    )


def test_an_override_moving_an_object_out_of_the_allowed_namespaces_is_refused(
    world: Any,
) -> None:
    team, admin, application = world
    team_guardrails_set(team=team, actor=admin, allowed_namespaces=["shop-*"])
    application.overrides = [
        {
            "clusters": ["prod-1"],
            "patches": [
                {
                    "kind": "ConfigMap",
                    "name": "settings",
                    "op": "replace",
                    "path": "/metadata/namespace",
                    "value": "kube-system",
                }
            ],
        }
    ]
    application.save()
    cluster = make_cluster(team=team, name="prod-1")
    work = work_target(application=application, cluster=cluster, version=1, replicas=None)
    with pytest.raises(propagation.RenderError) as refused:
        work_render(ClusterWork.objects.get(pk=work.pk))  # as a sync loads it
    assert "ConfigMap 'settings' is in namespace 'kube-system'" in str(refused.value)


def test_a_pull_agent_gets_nothing_the_guardrails_refuse(world: Any) -> None:
    team, admin, application = world
    edge = make_cluster(team=team, name="edge-1", mode=ClusterMode.PULL)
    work = work_target(application=application, cluster=edge, version=1, replicas=None)
    assert len(agent_work(cluster=edge)["objects"]) == 3  # control: allowed, delivered
    team_guardrails_set(team=team, actor=admin, allowed_namespaces=["other-*"])
    assert agent_work(cluster=edge)["objects"] == []
    work.refresh_from_db()
    assert work.state == WorkState.FAILED
    assert "Namespace 'shop-web' is not allowed for team shop" in work.message
