"""The operation page: reached from the overview, says who/what/when, cancels (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import Role
from audit.models import AuditEvent
from operations.choices import OperationState
from operations.models import Operation
from operations.services import operation_claim, operation_create, operation_finish
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


def test_overview_operations_link_to_the_page_not_the_api(client: Client) -> None:
    # given an operation on a cluster the user's team owns
    user = make_user()
    team = make_team()
    add_member(team, user, Role.OPERATOR)
    cluster = make_cluster(team=team, name="edge-1")
    operation = operation_create(
        kind="cluster.provision", created_by=user, target=cluster, team=team
    )
    client.force_login(user)
    # when the overview is drawn
    page = client.get("/").content.decode()
    # then its link opens the operation page (HTML), and the API keeps its own route name
    assert f'href="/operations/{operation.pk}/"' in page
    assert f"/api/v1/operations/{operation.pk}/" not in page
    assert '<td><a href="/clusters/edge-1/">edge-1</a></td>' in page  # what it acts on
    assert reverse("operation-detail", args=[operation.pk]) == f"/api/v1/operations/{operation.pk}/"
    assert reverse("operations:detail", args=[operation.pk]) == f"/operations/{operation.pk}/"
    opened = client.get(f"/operations/{operation.pk}/")
    assert opened.status_code == 200 and opened["Content-Type"].startswith("text/html")


def test_operation_page_says_who_what_and_when(client: Client) -> None:
    # given an operation on a cluster, started at 08:00:05 UTC and ended at 08:02:10 UTC
    user = make_user(username="alice")
    team = make_team()
    add_member(team, user, Role.OPERATOR)
    cluster = make_cluster(team=team, name="edge-1")
    operation = operation_create(
        kind="cluster.provision", created_by=user, target=cluster, team=team
    )
    operation_claim(operation_id=operation.pk)
    operation_finish(operation_id=operation.pk, state=OperationState.FAILED, error="boom")
    Operation.objects.filter(pk=operation.pk).update(
        started_at=datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC),
        finished_at=datetime(2026, 12, 1, 8, 2, 10, tzinfo=UTC),
    )
    client.force_login(user)
    # when
    page = client.get(f"/operations/{operation.pk}/").content.decode()
    # then
    assert 'datetime="2026-12-01T08:00:05Z"' in page and "2026-12-01 08:00:05 UTC" in page
    assert 'datetime="2026-12-01T08:02:10Z"' in page and "2026-12-01 08:02:10 UTC" in page
    assert "alice" in page
    assert '<a href="/clusters/edge-1/">edge-1</a>' in page
    assert "Cancel operation" not in page  # it has ended


def test_creator_cancels_a_pending_operation_from_the_page(client: Client) -> None:
    # given a pending operation of its creator
    user = make_user(username="bob")
    operation = operation_create(kind="cluster.provision", created_by=user)
    client.force_login(user)
    assert "Cancel operation" in client.get(f"/operations/{operation.pk}/").content.decode()
    # when the Cancel button is pressed
    response = client.post(f"/operations/{operation.pk}/cancel/")
    # then the same service as the API's cancel ran: canceled at once, audited
    assert response.status_code == 302 and response["Location"] == f"/operations/{operation.pk}/"
    operation.refresh_from_db()
    assert operation.state == OperationState.CANCELED and operation.cancel_requested
    assert AuditEvent.objects.filter(action="operation.cancel").count() == 1
    after = client.get(f"/operations/{operation.pk}/").content.decode()
    assert "Cancel operation" not in after and "Canceled before it started" in after


def test_running_operation_is_asked_to_stop(client: Client) -> None:
    user = make_user()
    operation = operation_create(kind="cluster.provision", created_by=user)
    operation_claim(operation_id=operation.pk)
    client.force_login(user)
    client.post(f"/operations/{operation.pk}/cancel/")
    operation.refresh_from_db()
    assert operation.state == OperationState.RUNNING and operation.cancel_requested


def test_a_team_viewer_cannot_cancel(client: Client) -> None:
    # given another user's operation in a team where this user is only a viewer
    team = make_team()
    viewer = make_user()
    add_member(team, viewer, Role.VIEWER)
    operation = operation_create(kind="cluster.provision", created_by=make_user(), team=team)
    client.force_login(viewer)
    # then no button, and a forged POST is refused, audited, and changes nothing
    assert "Cancel operation" not in client.get(f"/operations/{operation.pk}/").content.decode()
    assert client.post(f"/operations/{operation.pk}/cancel/").status_code == 403
    operation.refresh_from_db()
    assert operation.state == OperationState.PENDING and not operation.cancel_requested
    assert AuditEvent.objects.filter(action="request.denied").count() == 1


def test_cancel_of_an_ended_operation_says_so(client: Client) -> None:
    user = make_user()
    operation = operation_create(kind="x", created_by=user)
    operation_claim(operation_id=operation.pk)
    operation_finish(operation_id=operation.pk, state=OperationState.SUCCEEDED)
    client.force_login(user)
    page = client.post(f"/operations/{operation.pk}/cancel/", follow=True).content.decode()
    assert "already ended" in page
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED
