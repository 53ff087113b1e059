"""Operators' "evaluate now" / "compute now" on the overview, a cluster page and the cost
page: role-checked, audited, queued for the workers (never run on the web thread)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from django.test import Client

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.services import refresh
from core.celery import app
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

EVALUATE = "policies.tasks.policies_evaluate_batch_task"
COST = "costs.tasks.cost_compute_clusters_task"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every message the refresh sends to the broker: (name, args, kwargs, queue)."""
    calls: list[dict[str, Any]] = []

    def record(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        calls.append({"name": name, "args": args, "kwargs": kwargs, "queue": options["queue"]})

    monkeypatch.setattr(refresh.app, "send_task", record)
    return calls


def _client(*memberships: tuple[Any, Role]) -> tuple[Client, Any]:
    user = make_user()
    for team, role in memberships:
        add_member(team, user, role)
    client = Client()
    client.force_login(user)
    return client, user


def test_operator_queues_evaluation_and_cost_of_a_cluster(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    # given: an operator of the cluster's team
    team = make_team()
    cluster = make_cluster(team=team, name="eu-prod")
    client, user = _client((team, Role.OPERATOR))
    assert "Evaluate now" in client.get("/clusters/eu-prod/").content.decode()

    # when: they press "Evaluate now"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/clusters/eu-prod/refresh/", follow=True)

    # then: a forced evaluation of every enabled policy and this hour's cost are queued
    assert response.redirect_chain == [("/clusters/eu-prod/", 302)]
    assert sent == [
        {
            "name": EVALUATE,
            "args": [[cluster.pk]],
            "kwargs": {"policy_ids": None, "force": True},
            "queue": "policies",
        },
        {"name": COST, "args": [[cluster.pk]], "kwargs": {}, "queue": "costs"},
    ]
    assert "queued for eu-prod" in response.content.decode()
    event = AuditEvent.objects.get(action="clusters.refresh_now")
    assert event.actor_id == user.pk
    assert event.detail["scope"] == "cluster" and event.detail["clusters"] == 1


def test_viewer_is_refused_and_nothing_is_queued(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    team = make_team()
    make_cluster(team=team, name="eu-prod")
    client, _ = _client((team, Role.VIEWER))
    assert "Evaluate now" not in client.get("/clusters/eu-prod/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        cluster_page = client.post("/clusters/eu-prod/refresh/")
        fleet = client.post("/refresh-now/", {"from": "home"})

    assert cluster_page.status_code == 403 and fleet.status_code == 403
    assert sent == []
    assert not AuditEvent.objects.filter(action="clusters.refresh_now").exists()
    assert AuditEvent.objects.filter(action="request.denied").count() == 2
    assert "Evaluate now" not in client.get("/").content.decode()


def test_outsider_gets_404_for_another_teams_cluster(sent: list[dict[str, Any]]) -> None:
    make_cluster(team=make_team(), name="eu-prod")
    client, _ = _client((make_team(), Role.ADMIN))
    assert client.post("/clusters/eu-prod/refresh/").status_code == 404
    assert sent == []


def test_overview_refreshes_only_the_clusters_the_user_operates(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    # given: operator in team A (two clusters), viewer in team B (one cluster)
    a, b = make_team(), make_team()
    a1, a2 = make_cluster(team=a, name="a-one"), make_cluster(team=a, name="a-two")
    make_cluster(team=b, name="b-one")
    client, _ = _client((a, Role.OPERATOR), (b, Role.VIEWER))
    assert "Evaluate now" in client.get("/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/refresh-now/", {"from": "home"}, follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert [(m["name"], m["args"]) for m in sent] == [
        (EVALUATE, [sorted([a1.pk, a2.pk])]),
        (COST, [sorted([a1.pk, a2.pk])]),
    ]
    assert "queued for 2 clusters" in response.content.decode()
    event = AuditEvent.objects.get(action="clusters.refresh_now")
    assert event.detail == {
        "scope": "fleet",
        "clusters": 2,
        "evaluated": 2,
        "policies": True,
        "cost": True,
    }


def test_cost_page_computes_cost_only(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    team = make_team()
    cluster = make_cluster(team=team, name="eu-prod")
    client, _ = _client((team, Role.OPERATOR))
    assert "Compute now" in client.get("/costs/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/refresh-now/", {"from": "cost"})

    assert response.status_code == 302 and response["Location"] == "/costs/"
    assert [(m["name"], m["args"], m["queue"]) for m in sent] == [(COST, [[cluster.pk]], "costs")]


def test_a_large_fleet_is_queued_in_batches(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    # given: 51 clusters, one more than a batch (refresh.BATCH_SIZE = 50)
    team = make_team()
    clusters = [make_cluster(team=team, name=f"c-{i:02d}") for i in range(51)]
    user = make_user(superuser=True)

    with django_capture_on_commit_callbacks(execute=True):
        queued = refresh.clusters_refresh_now(actor=user, clusters=clusters, scope="fleet")

    # then: two messages per task, 50 + 1 ids, every cluster exactly once
    assert queued == 51
    for task in (EVALUATE, COST):
        batches = [m["args"][0] for m in sent if m["name"] == task]
        assert [len(ids) for ids in batches] == [50, 1]
        assert sorted(pk for ids in batches for pk in ids) == sorted(c.pk for c in clusters)


def test_pull_mode_clusters_get_cost_but_no_hub_evaluation(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    """The hub does not evaluate pull-mode clusters (the sweep skips them); a forced run
    would only store an error row over them."""
    team = make_team()
    edge = make_cluster(team=team, name="edge", mode="pull")
    client, _ = _client((team, Role.OPERATOR))

    assert "Compute cost now" in client.get("/clusters/edge/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/clusters/edge/refresh/", follow=True)

    assert [(m["name"], m["args"]) for m in sent] == [(COST, [[edge.pk]])]
    assert "This hour&#x27;s cost queued for edge" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "kwargs"), [(EVALUATE, {"policy_ids": None, "force": True}), (COST, {})]
)
def test_the_messages_name_real_tasks_that_accept_them(name: str, kwargs: dict[str, Any]) -> None:
    """Sent by name, so a renamed task or changed signature would fail only in a worker."""
    app.loader.import_default_modules()
    task = app.tasks[name]
    inspect.signature(task.run).bind([1, 2], **kwargs)  # raises TypeError if not accepted


def test_collect_now_reads_the_full_inventory(
    sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    """A user's "Collect now" (page and API) is not a scheduled pass, which reads the full
    inventory only every KEELSON_COLLECT_INVENTORY_EVERY intervals: it asks for all of it."""
    team = make_team()
    cluster = make_cluster(team=team, name="eu-prod")
    client, _ = _client((team, Role.OPERATOR))

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/clusters/eu-prod/probe/").status_code == 302
        assert client.post("/api/v1/clusters/eu-prod/probe/").status_code == 202

    queued = [(call["name"], call["args"], call["kwargs"]) for call in sent]
    full = ("clusters.tasks.clusters_collect_shard_task", [[cluster.pk]], {"scheduled": False})
    assert queued == [full, full]
