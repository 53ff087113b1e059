"""Application pages: empty state, create with per-document errors, detail, the placement
editor's live what-if preview, saving with validation, rollout and delete permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.choices import Role
from applications.models import Application, ClusterWork, WorkState
from applications.services import application_create
from audit.models import AuditEvent
from clusters.models import Cluster
from operations.models import Operation
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
MANIFESTS = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", resources: {requests: {cpu: 100m, memory: 64Mi}}}
"""


def _login(role: Role | None, team: Any) -> Client:
    user = make_user()
    if role is not None:
        add_member(team, user, role)
    client = Client()
    client.force_login(user)
    return client


def _fleet(team: Any) -> None:
    capacity = {"allocatable_cpu_millis": 4000, "allocatable_memory_bytes": 8 * GIB}
    make_cluster(team=team, name="eu-1", status="ready", labels={"env": "prod"}, **capacity)
    make_cluster(team=team, name="us-1", status="ready", labels={"env": "dev"}, **capacity)
    make_cluster(team=team, name="ap-1", status="unreachable", labels={"env": "prod"}, **capacity)


def test_empty_list_says_what_to_do_next() -> None:
    team = make_team()
    page = _login(Role.OPERATOR, team).get("/applications/").content.decode()
    assert "Create your first application" in page
    page = _login(Role.VIEWER, team).get("/applications/").content.decode()
    assert "Ask an operator" in page


def test_create_reports_errors_per_document_and_creates_nothing() -> None:
    team = make_team(name="shop")
    client = _login(Role.OPERATOR, team)
    broken = MANIFESTS + "---\napiVersion: v1\nkind: Service\nmetadata: {}\n"
    response = client.post(
        "/applications/new/",
        {"name": "web", "team": "shop", "manifests": broken, "placement": "{}"},
    )
    assert response.status_code == 400
    assert "Document 2: metadata.name is missing" in response.content.decode()
    assert not Application.objects.exists()
    response = client.post(
        "/applications/new/",
        {"name": "web", "team": "shop", "manifests": MANIFESTS, "placement": '{"replicas": "x"'},
    )
    assert response.status_code == 400
    assert "Not valid JSON at line 1" in response.content.decode()
    response = client.post(
        "/applications/new/",
        {"name": "web", "team": "shop", "manifests": MANIFESTS, "placement": "{}"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/applications/web/"
    application = Application.objects.get(name="web")
    assert application.namespace == "web"  # the name when left empty
    assert application.team == team


def test_detail_shows_where_it_runs() -> None:
    team = make_team()
    _fleet(team)
    application = application_create(
        actor=None, team=team, name="web", namespace="web", manifests=MANIFESTS
    )
    eu = Cluster.objects.get(name="eu-1")
    ClusterWork.objects.create(
        application=application,
        cluster=eu,
        desired_version=1,
        applied_version=1,
        state=WorkState.AVAILABLE,
        desired_replicas=3,
        available_replicas=3,
    )
    page = _login(Role.VIEWER, team).get("/applications/web/").content.decode()
    assert "eu-1" in page and "3 / 3" in page and "Available" in page
    assert "Roll out" not in page  # a viewer gets no buttons


def test_placement_preview_explains_every_cluster_and_save_validates() -> None:
    team = make_team()
    _fleet(team)
    application_create(actor=None, team=team, name="web", namespace="web", manifests=MANIFESTS)
    client = _login(Role.OPERATOR, team)
    # the live what-if, as the editor posts it on every pause in typing
    fragment = client.post(
        "/applications/web/placement/preview/",
        {"placement": '{"selector": "env=prod", "replicas": 2}'},
    ).content.decode()
    assert "Would run on 1 cluster" in fragment
    assert "eu-1" in fragment
    assert "LabelSelector" in fragment and "us-1" in fragment
    assert "Healthy" in fragment and "status is unreachable" in fragment
    bad = client.post("/applications/web/placement/preview/", {"placement": '{"division": "x"}'})
    assert "division: One of duplicated, static, capacity, aggregated." in bad.content.decode()
    # saving an invalid rollout strategy changes nothing
    response = client.post(
        "/applications/web/placement/",
        {
            "placement": '{"selector": "env=prod"}',
            "overrides": "[]",
            "rollout": '{"strategy": "blue-green"}',
        },
    )
    assert response.status_code == 400
    assert "strategy: One of all_at_once, rolling, canary." in response.content.decode()
    assert Application.objects.get(name="web").placement.spec == {}
    response = client.post(
        "/applications/web/placement/",
        {
            "placement": '{"selector": "env=prod"}',
            "overrides": '[{"selector": "env=prod", "image": "nginx:1.26"}]',
            "rollout": '{"strategy": "rolling", "max_concurrency": 2}',
        },
    )
    assert response.status_code == 302
    saved = Application.objects.get(name="web")
    assert saved.placement.spec == {"selector": "env=prod"}
    assert saved.overrides[0]["image"] == "nginx:1.26"
    assert saved.rollout == {"strategy": "rolling", "max_concurrency": 2}


def test_rollout_and_delete_need_an_operator() -> None:
    team = make_team()
    _fleet(team)
    application_create(actor=None, team=team, name="web", namespace="web", manifests=MANIFESTS)
    viewer = _login(Role.VIEWER, team)
    assert viewer.post("/applications/web/rollout/", {"version": "1"}).status_code == 403
    assert viewer.post("/applications/web/delete/", {"confirm": "web"}).status_code == 403
    assert AuditEvent.objects.filter(action="request.denied").count() >= 2
    outsider = _login(None, make_team())
    assert outsider.get("/applications/web/").status_code == 404
    operator = _login(Role.OPERATOR, team)
    response = operator.post("/applications/web/rollout/", {"version": "1"})
    operation = Operation.objects.get(kind="application.rollout")
    assert response["Location"] == f"/operations/{operation.pk}/"
    assert operation.params["version"] == 1
    # a second rollout while the first is pending is refused with the reason
    again = operator.post("/applications/web/rollout/", {"version": "1"}, follow=True)
    assert "is in progress" in again.content.decode()
    assert Operation.objects.filter(kind="application.rollout").count() == 1
