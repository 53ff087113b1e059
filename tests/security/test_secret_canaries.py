"""Secret canaries: a cluster's token and an agent's bootstrap token, once entered, appear
in no API response, page, log line, audit record or websocket message afterwards."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import yaml
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework.test import APIClient

from accounts.choices import Role
from applications.models import Application
from applications.rollout import rollout_start
from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from fleet.asgi import application
from localkube.env import LocalCluster
from operations.models import Operation
from policies.services.evaluation import clusters_evaluate
from policies.services.library import library_load
from tests.factories import add_member, make_team, make_user
from tests.fleet.test_websocket import _headers_for
from tests.placement.helpers import drive_rollout
from tests.placement.test_pages import MANIFESTS

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def test_secrets_never_come_back(
    kube_cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    team = make_team(name="platform")
    admin = make_user()
    add_member(team, admin, Role.ADMIN)
    api = APIClient()
    api.force_authenticate(admin)
    plane = kube_cluster.control_plane
    canaries = [plane.token]

    # entered once: a push cluster by kubeconfig, and a pull cluster's bootstrap token
    registered = api.post(
        "/api/v1/clusters/",
        {"name": "canary", "team": "platform", "kubeconfig": yaml.safe_dump(plane.kubeconfig())},
        format="json",
    )
    assert registered.status_code == 201
    pull = api.post(
        "/api/v1/clusters/",
        {"name": "canary-edge", "team": "platform", "mode": "pull"},
        format="json",
    )
    canaries.append(pull.json()["bootstrap_token"])
    reissued = api.post("/api/v1/clusters/canary-edge/bootstrap-token/")
    canaries.append(reissued.json()["bootstrap_token"])
    clusters_collect(cluster_ids=[Cluster.objects.get(name="canary").pk])
    deregistration = api.delete("/api/v1/clusters/canary-edge/")
    assert deregistration.status_code == 202

    # an application rolled out to the cluster and the policy library evaluated on it
    # (both read the credential and talk to the cluster)
    created = api.post(
        "/api/v1/applications/",
        {
            "name": "canary-app",
            "team": "platform",
            "namespace": "canary-app",
            "manifests": MANIFESTS,
            "placement": {"selector": "", "prioritizers": {}},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    rollout = rollout_start(application=Application.objects.get(name="canary-app"), actor=admin)
    drive_rollout(rollout)
    assert rollout.state == "succeeded", rollout.error
    library_load(team=team)
    clusters_evaluate(cluster_ids=[Cluster.objects.get(name="canary").pk])

    # then: every read of the API and the pages
    operation = Operation.objects.filter(kind="cluster.deregister").first()
    assert operation is not None
    urls = [
        "/api/v1/clusters/",
        "/api/v1/clusters/canary/",
        "/api/v1/clusters/canary/inventory/",
        "/api/v1/clusters/canary/health/",
        "/api/v1/clusters/canary/timeline/",
        "/api/v1/clusters/canary/provisioning/",
        "/api/v1/clusters/canary-edge/",
        "/api/v1/operations/",
        f"/api/v1/operations/{operation.pk}/",
        f"/api/v1/operations/{operation.pk}/log/",
        "/api/v1/audit-events/",
        "/api/v1/cluster-sets/",
        "/api/v1/costs/",
        "/api/v1/teams/",
        "/api/v1/providers/",
        "/api/v1/applications/",
        "/api/v1/applications/canary-app/status/",
        "/api/v1/applications/canary-app/decisions/",
        f"/api/v1/operations/{rollout.pk}/",
        "/api/v1/policies/",
        "/api/v1/policy-evaluations/",
        "/api/v1/compliance/",
        "/api/schema/",
    ]
    bodies = []
    for url in urls:
        response = api.get(url)
        assert response.status_code == 200, url
        bodies.append(response.content.decode())
    page = Client()
    page.force_login(admin)
    for url in [
        "/",
        "/clusters/",
        "/clusters/canary/",
        "/clusters/canary-edge/",
        "/costs/",
        f"/operations/{operation.pk}/",
        f"/operations/{rollout.pk}/",
        "/applications/",
        "/applications/canary-app/",
        "/policies/",
    ]:
        rendered = page.get(url)
        assert rendered.status_code == 200, url
        bodies.append(rendered.content.decode())
    # a bad registration's error echoes nothing either
    refused = api.post(
        "/api/v1/clusters/",
        {
            "name": "bad",
            "team": "platform",
            "server": plane.server,
            "token": plane.token + "x",
            "ca_data": plane.ca_file.read_text(),
        },
        format="json",
    )
    bodies.append(refused.content.decode())

    # and the websocket snapshot of the cluster
    headers = _headers_for(admin)

    async def snapshot() -> str:
        socket = WebsocketCommunicator(application, "/ws/clusters/canary/", headers=headers)
        connected, _ = await socket.connect()
        assert connected
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return json.dumps(message)

    bodies.append(asyncio.run(snapshot()))
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    for canary in canaries:
        for body in bodies:
            assert canary not in body
        assert canary not in caplog.text
        assert canary not in audit
    assert AuditEvent.objects.filter(action="cluster.credential.read").exists()
