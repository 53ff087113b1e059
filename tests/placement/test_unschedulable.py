"""Bug 6 of issue 20: a decision that chose no cluster must not remove the application from
every cluster it runs on. It keeps running, the placement is marked Unschedulable with the
reason (API and page), and only `evict-everywhere` naming every such cluster empties it.

The clusters are pull-mode (the hub never calls them; the test plays their agents), so the
whole lifecycle runs without API servers; tests/placement/test_lifecycle.py does the same
on real kube-apiservers."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from applications.models import Application, ClusterWork, PlacementDecision
from applications.reconcile import placement_reconcile
from applications.rollout import ROLLOUT_KIND, rollout_run, rollout_start
from applications.services import placement_decide
from audit.models import AuditEvent
from clusters.models import Cluster
from operations.models import Operation
from operations.services import operation_create
from tests.factories import add_member, make_team, make_user
from tests.placement.helpers import drive_rollout
from tests.placement.pull import agent_reports, pull_cluster
from tests.placement.test_rollout_api import client_for, create_app

pytestmark = pytest.mark.django_db

URL = "/api/v1/applications/shop/"


@pytest.fixture
def team() -> Team:
    return make_team(name="shop-team")


@pytest.fixture
def operator_user(team: Team) -> Any:
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    return user


@pytest.fixture
def operator(operator_user: Any) -> APIClient:
    return client_for(operator_user)


@pytest.fixture
def browser(operator_user: Any) -> Client:
    """The operator in a browser (pages use the session)."""
    client = Client()
    client.force_login(operator_user)
    return client


@pytest.fixture
def edges(team: Team) -> list[Cluster]:
    return [pull_cluster(team, name, {"tier": "edge"}) for name in ("edge-1", "edge-2")]


def deploy(application: Application, clusters: list[Cluster]) -> Operation:
    """Roll the newest version out; the agents report it available after it is applied."""
    operation = rollout_start(application=application, actor=None)
    rollout_run(operation_id=operation.pk)
    for cluster in clusters:
        agent_reports(cluster, application)
    return drive_rollout(operation)


@pytest.fixture
def shop(operator: APIClient, team: Team, edges: list[Cluster]) -> Application:
    """`shop` running on edge-1 and edge-2 (all at once, every matching cluster)."""
    create_app(operator, team.name, "shop", placement={"selector": "tier=edge"})
    application = Application.objects.get(name="shop")
    assert deploy(application, edges).state == "succeeded"
    assert running(application) == ["edge-1", "edge-2"]
    return application


def running(application: Application) -> list[str]:
    return sorted(
        ClusterWork.objects.filter(application=application).values_list("cluster__name", flat=True)
    )


def status_of(client: APIClient) -> dict[str, Any]:
    response = client.get(URL)
    assert response.status_code == 200
    return dict(response.json()["placement_status"])


# Both clusters are excluded by the selector typo; the reason names the count per
# predicate and the first cluster by name with its exclusion reason.
TYPO_REASON = (
    "No cluster fits the placement: 2 excluded (2 by LabelSelector); "
    "e.g. edge-1: labels do not match 'tier=egde'. Still running on edge-1, edge-2."
)


def test_a_rollout_that_would_empty_the_application_is_refused_and_kept_running(
    operator: APIClient, browser: Client, shop: Application
) -> None:
    # given a typo in the selector: nothing matches any more
    assert status_of(operator)["state"] == "scheduled"
    patched = operator.patch(URL, {"placement": {"selector": "tier=egde"}}, format="json")
    assert patched.status_code == 200
    operations = Operation.objects.count()

    # when a rollout is asked for
    response = operator.post(URL + "rollout/", {}, format="json")

    # then it is refused, naming the clusters it keeps running on and the way out
    assert response.status_code == 400, response.content
    message = response.json()["error"]["message"]
    assert "shop keeps running on edge-1, edge-2 and is marked Unschedulable" in message
    assert "evict it everywhere naming edge-1, edge-2" in message
    # and no rollout started; the empty decision is stored (it explains why)
    assert Operation.objects.count() == operations
    assert PlacementDecision.objects.filter(application=shop)[0].decision["chosen"] == []
    # and both works are still there
    assert running(shop) == ["edge-1", "edge-2"]
    # and the application is Unschedulable with the reason, in the API
    status = status_of(operator)
    assert status["state"] == "unschedulable"
    assert status["reason"] == TYPO_REASON
    assert status["since"] is not None
    # and on the application page, with a confirmation that lists both clusters
    page = browser.get("/applications/shop/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Unschedulable" in html and "tier=egde" in html
    assert 'name="clusters" value="edge-1"' in html and 'name="clusters" value="edge-2"' in html
    # and it is audited once
    assert AuditEvent.objects.filter(action="placement.unschedulable").count() == 1


def test_reconcile_keeps_an_application_nothing_fits_and_does_not_reschedule(
    operator: APIClient, shop: Application
) -> None:
    operator.patch(URL, {"placement": {"selector": "tier=egde"}}, format="json")
    operations = Operation.objects.count()
    decisions = PlacementDecision.objects.count()

    # when reconcile runs several times
    outcomes = [placement_reconcile(application=shop) for _ in range(3)]

    # then each pass keeps it where it is: no rollout, no new decision, works untouched
    assert outcomes == ["unschedulable"] * 3
    assert Operation.objects.count() == operations
    assert PlacementDecision.objects.count() == decisions
    assert running(shop) == ["edge-1", "edge-2"]
    # and it is marked Unschedulable once (same reason: no new audit event per pass)
    assert status_of(operator)["reason"] == TYPO_REASON
    assert AuditEvent.objects.filter(action="placement.unschedulable").count() == 1

    # when the typo is fixed, then the next pass finds it schedulable again and changes
    # nothing in the clusters (the same two as the last decision)
    operator.patch(URL, {"placement": {"selector": "tier=edge"}}, format="json")
    assert placement_reconcile(application=shop) == "synced"
    assert status_of(operator) | {"since": None} == {
        "state": "scheduled",
        "reason": "",
        "since": None,
    }
    assert AuditEvent.objects.filter(action="placement.scheduled").count() == 1
    assert running(shop) == ["edge-1", "edge-2"]


def test_clusters_leaving_for_a_transient_reason_do_not_empty_the_application(
    operator: APIClient, shop: Application, edges: list[Cluster]
) -> None:
    # given no toleration of unreachable clusters
    operator.patch(
        URL,
        {"placement": {"selector": "tier=edge", "unreachable_toleration_seconds": 0}},
        format="json",
    )
    # when both clusters become unreachable (their agents stopped heartbeating)
    Cluster.objects.filter(pk__in=[c.pk for c in edges]).update(
        status="unreachable", status_changed_at=timezone.now()
    )
    # then reconcile keeps the application on both, marked Unschedulable by Healthy
    assert [placement_reconcile(application=shop) for _ in range(2)] == ["unschedulable"] * 2
    assert running(shop) == ["edge-1", "edge-2"]
    assert not Operation.objects.filter(params__reason__startswith="reschedule").exists()
    assert status_of(operator)["reason"].startswith(
        "No cluster fits the placement: 2 excluded (2 by Healthy); e.g. edge-1: status is "
        "unreachable"
    )
    # when they are back, then it is scheduled again on the same two, without a rollout
    Cluster.objects.filter(pk__in=[c.pk for c in edges]).update(
        status="ready", status_changed_at=timezone.now()
    )
    assert placement_reconcile(application=shop) == "synced"
    assert status_of(operator)["state"] == "scheduled"
    assert running(shop) == ["edge-1", "edge-2"]
    assert not Operation.objects.filter(params__reason__startswith="reschedule").exists()


def test_evict_everywhere_needs_every_cluster_named_and_the_operator_role(
    operator: APIClient, team: Team, shop: Application
) -> None:
    operator.patch(URL, {"placement": {"selector": "tier=egde"}}, format="json")
    operator.post(URL + "rollout/", {}, format="json")  # refused: Unschedulable
    viewer_user = make_user()
    add_member(team, viewer_user, Role.VIEWER)
    viewer = client_for(viewer_user)
    operations = Operation.objects.count()

    # when a viewer asks, then 403
    body = {"clusters": ["edge-1", "edge-2"]}
    assert viewer.post(URL + "evict-everywhere/", body, format="json").status_code == 403
    # when an operator names only one of the two, or an unknown one, or none
    for clusters in (["edge-1"], ["edge-1", "edge-2", "edge-3"], ["edge-1", "edge-1"]):
        response = operator.post(URL + "evict-everywhere/", {"clusters": clusters}, format="json")
        # then 400 naming the clusters it runs on
        assert response.status_code == 400, clusters
        assert response.json()["error"]["fields"]["clusters"] == [
            "Name exactly the clusters shop runs on, to confirm its removal from all of them: "
            "edge-1, edge-2."
        ]
    assert operator.post(URL + "evict-everywhere/", {}, format="json").status_code == 400
    # and nothing was started or removed
    assert Operation.objects.count() == operations
    assert running(shop) == ["edge-1", "edge-2"]

    # when an operator names both (in any order)
    response = operator.post(
        URL + "evict-everywhere/", {"clusters": ["edge-2", "edge-1"]}, format="json"
    )
    # then an operation removes it from both and the application is kept, schedulable
    assert response.status_code == 202, response.content
    operation = drive_rollout(Operation.objects.get(pk=response.json()["operation"]))
    assert operation.state == "succeeded", operation.error
    assert operation.message == "shop removed from edge-1, edge-2"
    assert running(shop) == []
    assert Application.objects.filter(name="shop").exists()
    assert status_of(operator)["state"] == "scheduled"
    # and the action is audited with the clusters
    event = AuditEvent.objects.get(action="application.evict_everywhere")
    assert event.detail == {"clusters": ["edge-1", "edge-2"]}
    # and reconcile leaves an application that runs nowhere alone
    assert placement_reconcile(application=shop) == "idle"
    # and it cannot be evicted again
    again = operator.post(URL + "evict-everywhere/", {"clusters": ["edge-1"]}, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "shop does not run on any cluster."


def test_the_page_form_evicts_only_with_every_cluster_ticked(
    operator: APIClient, browser: Client, shop: Application
) -> None:
    operator.patch(URL, {"placement": {"selector": "tier=egde"}}, format="json")
    placement_reconcile(application=shop)
    url = "/applications/shop/evict/"
    # when one box is left unticked, then nothing starts and the page says why
    response = browser.post(url, {"clusters": ["edge-1"]}, follow=True)
    assert "edge-1, edge-2" in response.content.decode()
    assert not Operation.objects.filter(params__has_key="evict").exists()
    # when both are ticked, then the removal starts and the browser follows it
    response = browser.post(url, {"clusters": ["edge-1", "edge-2"]})
    assert response.status_code == 302
    operation = Operation.objects.get(params__has_key="evict")
    assert response["Location"].endswith(f"/operations/{operation.pk}/")
    assert drive_rollout(operation).state == "succeeded"
    assert running(shop) == []


def test_a_queued_rollout_of_an_empty_decision_refuses_to_empty_the_application(
    operator: APIClient, shop: Application
) -> None:
    # given a rollout operation of a decision that chose nothing, queued without the
    # guard of rollout_start (as an older release, or a hand-made operation, would)
    operator.patch(URL, {"placement": {"selector": "tier=egde"}}, format="json")
    decision = placement_decide(application=shop)
    assert decision.decision["chosen"] == []
    operation = operation_create(
        kind=ROLLOUT_KIND,
        created_by=None,
        target=shop,
        team=shop.team,
        params={
            "application_id": shop.pk,
            "version": 1,
            "decision_version": decision.version,
            "strategy": {},
        },
    )
    # when it runs, then it fails without removing anything, and says why
    operation = drive_rollout(operation)
    assert operation.state == "failed"
    assert "shop keeps running on edge-1, edge-2 and is marked Unschedulable" in operation.error
    assert running(shop) == ["edge-1", "edge-2"]
    assert status_of(operator)["state"] == "unschedulable"
