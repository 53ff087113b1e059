"""Writes that used to skip the service layer (issue 22): cluster-set delete, cluster
templates, "collect now". Each is validated, saved and audited in one service call; the
page and the API behave the same; bad input changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import ClusterSet, ClusterTemplate
from clusters.services import refresh
from costs.models import Budget
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

SPEC: dict[str, Any] = {
    "provider": "capi",
    "region": "eu-west-1",
    "kubernetes_version": "1.29.4",
    "node_pools": [{"name": "general", "instance_type": "m5.large", "count": 3}],
    "params": {"management_cluster": "mgmt", "infrastructure": "aws"},
}


@pytest.fixture
def team() -> Any:
    team = make_team(name="platform")
    make_cluster(team=team, name="mgmt")  # the Cluster API management cluster of SPEC
    return team


def _member(team: Any, role: Role) -> Any:
    user = make_user()
    add_member(team, user, role)
    return user


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _events(action: str) -> list[tuple[Any, ...]]:
    return list(
        AuditEvent.objects.filter(action=action)
        .order_by("at")
        .values_list("actor_name", "team__name", "target_type", "target_repr", "outcome")
    )


# ---------------------------------------------------------------- cluster sets


def test_deleting_a_cluster_set_is_audited_with_what_it_held(team: Any) -> None:
    # given a set with a member and a selector, and a budget over it
    operator = _member(team, Role.OPERATOR)
    cluster_set = ClusterSet.objects.create(name="web", team=team, selector="tier=web")
    cluster_set.members.add(make_cluster(team=team, name="eu-1"))
    Budget.objects.create(name="web-budget", team=team, cluster_set=cluster_set, monthly_amount=9)

    # when an operator deletes it through the API
    response = _api(operator).delete("/api/v1/cluster-sets/web/")

    # then it is gone (its budget with it) and one event says who removed what
    assert response.status_code == 204, response.content
    assert not ClusterSet.objects.exists() and not Budget.objects.exists()
    assert _events("clusterset.delete") == [
        (operator.username, "platform", "clusters.clusterset", "web", "success")
    ]
    detail = AuditEvent.objects.get(action="clusterset.delete").detail
    assert detail == {"selector": "tier=web", "members": ["eu-1"]}


def test_a_viewer_cannot_delete_a_cluster_set(team: Any) -> None:
    viewer = _member(team, Role.VIEWER)
    ClusterSet.objects.create(name="web", team=team)
    response = _api(viewer).delete("/api/v1/cluster-sets/web/")
    assert response.status_code == 403
    assert ClusterSet.objects.filter(name="web").exists()
    assert not AuditEvent.objects.filter(action="clusterset.delete").exists()


# ---------------------------------------------------------------- cluster templates


def test_template_create_update_delete_each_write_one_audit_event(team: Any) -> None:
    operator = _member(team, Role.OPERATOR)
    api = _api(operator)

    # when a template is created
    created = api.post(
        "/api/v1/cluster-templates/",
        {"name": "eks", "team": "platform", "spec": SPEC, "description": "three nodes"},
        format="json",
    )
    # then it is stored with its author and audited
    assert created.status_code == 201, created.content
    template = ClusterTemplate.objects.get(name="eks")
    assert (template.team, template.created_by, template.description) == (
        team,
        operator,
        "three nodes",
    )
    assert template.spec["node_pools"][0]["count"] == 3
    assert _events("clustertemplate.create") == [
        (operator.username, "platform", "clusters.clustertemplate", "eks", "success")
    ]

    # when its pool grows to 5 nodes
    bigger = {**SPEC, "node_pools": [{**SPEC["node_pools"][0], "count": 5}]}
    updated = api.put(
        "/api/v1/cluster-templates/eks/",
        {"name": "eks", "team": "platform", "spec": bigger, "description": "three nodes"},
        format="json",
    )
    # then the row changes and the event names only what changed
    assert updated.status_code == 200, updated.content
    template.refresh_from_db()
    assert template.spec["node_pools"][0]["count"] == 5
    event = AuditEvent.objects.get(action="clustertemplate.update")
    assert set(event.detail) == {"spec"}
    assert event.detail["spec"]["from"]["node_pools"][0]["count"] == 3
    assert event.detail["spec"]["to"]["node_pools"][0]["count"] == 5

    # when it is deleted
    assert api.delete("/api/v1/cluster-templates/eks/").status_code == 204
    # then it is gone, audited
    assert not ClusterTemplate.objects.exists()
    assert _events("clustertemplate.delete") == [
        (operator.username, "platform", "clusters.clustertemplate", "eks", "success")
    ]


def test_a_bad_template_spec_changes_nothing(team: Any) -> None:
    api = _api(_member(team, Role.OPERATOR))
    ghost = {**SPEC, "params": {"management_cluster": "ghost", "infrastructure": "aws"}}
    response = api.post(
        "/api/v1/cluster-templates/",
        {"name": "eks", "team": "platform", "spec": ghost},
        format="json",
    )
    assert response.status_code == 400
    assert "no registered cluster named 'ghost'" in str(response.json()["error"])
    assert not ClusterTemplate.objects.exists()

    # and an update to a bad spec leaves the stored one as it was
    assert (
        api.post(
            "/api/v1/cluster-templates/",
            {"name": "eks", "team": "platform", "spec": SPEC},
            format="json",
        ).status_code
        == 201
    )
    response = api.put(
        "/api/v1/cluster-templates/eks/",
        {"name": "eks", "team": "platform", "spec": {**SPEC, "kubernetes_version": "latest"}},
        format="json",
    )
    assert response.status_code == 400
    assert (
        ClusterTemplate.objects.get(name="eks").spec["kubernetes_version"] == "v1.29.4"
    )  # as stored
    assert not AuditEvent.objects.filter(action="clustertemplate.update").exists()


def test_a_template_cannot_move_into_a_team_its_editor_does_not_operate(team: Any) -> None:
    # given an operator of platform who only views another team
    other = make_team(name="other")
    operator = _member(team, Role.OPERATOR)
    add_member(other, operator, Role.VIEWER)
    api = _api(operator)
    api.post(
        "/api/v1/cluster-templates/",
        {"name": "eks", "team": "platform", "spec": SPEC},
        format="json",
    )
    # when they move the template into that team
    response = api.put(
        "/api/v1/cluster-templates/eks/",
        {"name": "eks", "team": "other", "spec": SPEC},
        format="json",
    )
    # then it is refused and the template stays where it was
    assert response.status_code == 403
    assert ClusterTemplate.objects.get(name="eks").team == team
    assert not AuditEvent.objects.filter(action="clustertemplate.update").exists()


# ---------------------------------------------------------------- collect now


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every message sent to the broker: name, args, kwargs, queue."""
    calls: list[dict[str, Any]] = []

    def record(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        calls.append({"name": name, "args": args, "kwargs": kwargs, "queue": options["queue"]})

    monkeypatch.setattr(refresh.app, "send_task", record)
    return calls


def test_collect_now_from_the_page_and_the_api_queue_and_audit_the_same(
    team: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    cluster = make_cluster(team=team, name="eu-1", mode="push")
    operator = _member(team, Role.OPERATOR)
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(operator).post("/clusters/eu-1/probe/")
    with django_capture_on_commit_callbacks(execute=True):
        api = _api(operator).post("/api/v1/clusters/eu-1/probe/")

    assert page.status_code == 302 and page["Location"] == "/clusters/eu-1/"
    assert api.status_code == 202, api.content
    # one full (unscheduled) collection of this cluster on the clusters queue, each time
    message = {
        "name": "clusters.tasks.clusters_collect_shard_task",
        "args": [[cluster.pk]],
        "kwargs": {"scheduled": False},
        "queue": "clusters",
    }
    assert sent == [message, message]
    assert (
        _events("cluster.probe")
        == [(operator.username, "platform", "clusters.cluster", "eu-1", "success")] * 2
    )
    # the API answers the id of the task it queued, the one its event names
    api_event = AuditEvent.objects.filter(action="cluster.probe").order_by("at").last()
    assert api_event is not None and api_event.detail == {"task": api.json()["task"]}


def test_collect_now_of_a_pull_cluster_is_refused_alike_and_changes_nothing(
    team: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    make_cluster(team=team, name="edge-1", mode="pull")
    operator = _member(team, Role.OPERATOR)
    page_client = _page(operator)
    with django_capture_on_commit_callbacks(execute=True):
        page = page_client.post("/clusters/edge-1/probe/")
        api = _api(operator).post("/api/v1/clusters/edge-1/probe/")

    # the API: 400 naming the mode; the page: back to the cluster with the same words
    assert api.status_code == 400
    said = api.json()["error"]["fields"]["mode"]
    assert said == [refresh.PULL_PROBE] and "agent" in said[0]
    assert page.status_code == 302 and page["Location"] == "/clusters/edge-1/"
    shown = [str(m) for m in get_messages(page.wsgi_request)]
    assert shown == [refresh.PULL_PROBE]
    # nothing queued, nothing recorded
    assert sent == []
    assert not AuditEvent.objects.filter(action="cluster.probe").exists()


def test_a_viewer_cannot_collect_now(team: Any, sent: list[dict[str, Any]]) -> None:
    make_cluster(team=team, name="eu-1", mode="push")
    viewer = _member(team, Role.VIEWER)
    assert _page(viewer).post("/clusters/eu-1/probe/").status_code == 403
    assert _api(viewer).post("/api/v1/clusters/eu-1/probe/").status_code == 403
    assert sent == []
    assert not AuditEvent.objects.filter(action="cluster.probe").exists()
