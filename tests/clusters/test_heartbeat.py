"""The pull agent's heartbeat: the one-statement path for a steady cluster, the full path
for everything else, and the same records either way."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.models import AuditEvent
from clusters.models import AgentToken, Cluster, ClusterInventory, HealthSample
from clusters.services.collection import agents_mark_silent
from clusters.services.heartbeat import agent_heartbeat, heartbeat_full, heartbeat_steady
from clusters.services.registration import (
    AgentAuthError,
    ClusterFields,
    agent_exchange,
    agent_token_rotate,
    agent_tokens_revoke,
    cluster_register_pull,
)
from kube.inventory import inventory_from_json
from tests.factories import make_team

GIB = 1024**3


def _report(*, ready_nodes: int = 3, nodes: int = 3, latency: float = 4.5) -> dict[str, Any]:
    """What an agent sends (the shape of `Inventory.as_json`)."""
    resources = {"cpu_millis": 4000, "memory_bytes": 16 * GIB, "gpu": 0, "pods": 110}
    return {
        "kubernetes_version": "v1.29.4",
        "api_latency_ms": latency,
        "nodes": [
            {
                "name": f"node-{n}",
                "ready": n < ready_nodes,
                "capacity": resources,
                "allocatable": {**resources, "cpu_millis": 3800},
            }
            for n in range(nodes)
        ],
        "namespaces": [{"name": "default", "phase": "Active"}],
        "workloads": {"deployments": {"total": 2, "unavailable": 0}},
        "pods_by_phase": {"Running": 12, "Pending": 1},
        "pods_crashlooping": 0,
        "requested_cpu_millis": 1800,
        "requested_memory_bytes": 3 * GIB,
        "warning_events": 2,
        "recent_warnings": [],
        "allocations": [
            {
                "node": "node-0",
                "namespace": "default",
                "cpu_millis": 1800,
                "memory_bytes": 1,
                "gpu": 0,
            }
        ],
        "storage_bytes": {"default": GIB},
    }


def _enrolled(name: str) -> tuple[Cluster, str]:
    cluster, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name=name, team=make_team())
    )
    _, token = agent_exchange(bootstrap_token=bootstrap)
    return cluster, token


def _beat(token: str, at: datetime | None = None, **report: Any) -> str:
    return agent_heartbeat(
        token=token, inventory=inventory_from_json(_report(**report)), at=at
    ).status


TIMES = ("last_seen_at", "last_probe_at", "status_changed_at")


def _recorded(cluster: Cluster) -> dict[str, Any]:
    """What a heartbeat writes on the cluster row, its inventory and its last sample,
    less the times."""
    cluster.refresh_from_db()
    row = model_to_dict(cluster, exclude=["id", "name", "team", "created_by", *TIMES])
    sample = HealthSample.objects.filter(cluster=cluster).order_by("-id").first()
    assert sample is not None
    return {
        **row,
        "inventory": ClusterInventory.objects.get(cluster=cluster).data,
        "sample": model_to_dict(sample, exclude=["id", "cluster", "at"]),
    }


@pytest.mark.django_db
def test_a_steady_heartbeat_records_what_the_full_path_records(
    django_assert_max_num_queries: Any,
) -> None:
    # given two Ready pull clusters, each seen once
    full, full_token = _enrolled("edge-full")
    steady, steady_token = _enrolled("edge-steady")
    assert _beat(full_token) == _beat(steady_token) == "ready"
    inventory = inventory_from_json(_report(latency=7.25))

    # when the same report arrives for both, one by the full path, one by the statement
    heartbeat_full(cluster=full, inventory=inventory)
    at = timezone.now()
    with django_assert_max_num_queries(2):  # PREPARE (once per connection), EXECUTE
        reply = heartbeat_steady(token=steady_token, inventory=inventory, at=at)

    # then the statement wrote the same cluster row, inventory and sample, at its time
    assert reply is not None and (reply.cluster, reply.status) == ("edge-steady", "ready")
    assert _recorded(steady) == _recorded(full)
    steady.refresh_from_db()
    assert steady.last_seen_at == steady.last_probe_at == steady.updated_at == at
    assert ClusterInventory.objects.get(cluster=steady).collected_at == at
    assert HealthSample.objects.filter(cluster=steady).latest("id").at == at
    assert HealthSample.objects.filter(cluster=steady).count() == 2
    assert AgentToken.objects.get(cluster=steady, kind="agent").last_used_at == at
    assert steady.transitions.count() == 1  # Unknown -> Ready, nothing since


@pytest.mark.django_db
def test_revoked_and_rotated_tokens_are_refused_at_the_next_heartbeat() -> None:
    cluster, token = _enrolled("edge-revoke")
    assert _beat(token) == "ready"
    assert _beat(token) == "ready"

    _, rotated = agent_token_rotate(token=token)
    # the old token works until the new one is first used (the answer may have been lost)
    assert _beat(token) == "ready"
    assert _beat(rotated) == "ready"
    with pytest.raises(AgentAuthError, match="revoked"):
        _beat(token)

    agent_tokens_revoke(cluster=cluster, actor=None)
    with pytest.raises(AgentAuthError, match="revoked"):
        _beat(rotated)
    with pytest.raises(AgentAuthError, match="Unknown"):
        _beat("kat_" + "x" * 43)
    assert HealthSample.objects.filter(cluster=cluster).count() == 4  # none of the refused


@pytest.mark.django_db
def test_a_status_change_still_goes_through_the_hysteresis(
    django_capture_on_commit_callbacks: Any,
) -> None:
    cluster, token = _enrolled("edge-degrade")
    with django_capture_on_commit_callbacks() as first:
        assert _beat(token) == "ready"  # Unknown takes the first observation at once
    assert first  # published (and the first policy evaluation queued)

    with django_capture_on_commit_callbacks() as steady:
        assert _beat(token) == "ready"
    assert not steady  # nothing changed: nothing published

    # a node goes NotReady: Degraded after two observations in a row, not one
    assert _beat(token, ready_nodes=2) == "ready"
    cluster.refresh_from_db()
    assert (cluster.pending_status, cluster.pending_count) == ("degraded", 1)
    with django_capture_on_commit_callbacks() as changed:
        assert _beat(token, ready_nodes=2) == "degraded"
    assert changed
    cluster.refresh_from_db()
    assert cluster.status_reason == "NodesNotReady"
    assert cluster.nodes_ready == 2
    transitions = list(cluster.transitions.order_by("at").values_list("to_status", flat=True))
    assert transitions == ["ready", "degraded"]

    # a single Ready report among Degraded ones: pending, then cleared by the statement
    assert _beat(token) == "degraded"
    cluster.refresh_from_db()
    assert (cluster.pending_status, cluster.pending_count) == ("ready", 1)
    assert _beat(token, ready_nodes=2) == "degraded"
    cluster.refresh_from_db()
    assert (cluster.pending_status, cluster.pending_count) == ("", 0)
    assert HealthSample.objects.filter(cluster=cluster).count() == 6


@pytest.mark.django_db
def test_silence_still_makes_a_heartbeating_cluster_unreachable() -> None:
    cluster, token = _enrolled("edge-silent")
    then = timezone.now() - timedelta(minutes=5)
    assert _beat(token, at=then) == "ready"  # first report: full path, its own clock
    Cluster.objects.filter(pk=cluster.pk).update(last_seen_at=then, last_probe_at=then)
    assert _beat(token, at=then + timedelta(seconds=30)) == "ready"  # steady

    # three intervals without a word
    assert agents_mark_silent(now=then + timedelta(seconds=130)) == 1
    cluster.refresh_from_db()
    assert (cluster.status, cluster.status_reason) == ("unreachable", "AgentSilent")

    # it speaks again: back to Ready after the recovery hysteresis (two reports)
    assert _beat(token) == "unreachable"
    assert _beat(token) == "ready"


def _post(base: str, token: str, body: Any, method: str = "POST") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 (the test's own server)
        f"{base}/api/v1/agent/heartbeat",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_heartbeats_through_uvicorn(asgi_server: str) -> None:
    # given an enrolled agent, heartbeating to a real web process
    cluster, token = _enrolled("edge-http")
    interval = {"heartbeat_interval": 30}
    assert _post(asgi_server, token, {"inventory": _report()}) == (
        200,
        {"cluster": "edge-http", "status": "ready", **interval},
    )

    # when it keeps heartbeating (the steady statement)
    for _ in range(3):
        assert _post(asgi_server, token, {"inventory": _report()})[0] == 200

    # then every heartbeat is in the history at once
    assert HealthSample.objects.filter(cluster=cluster, status="ready").count() == 4

    # the web's database connections are cut (as by a PostgreSQL restart): no heartbeat fails
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    for _ in range(2):
        assert _post(asgi_server, token, {"inventory": _report()})[0] == 200
    assert HealthSample.objects.filter(cluster=cluster).count() == 6

    # only a POST is a heartbeat
    for method in ("GET", "PUT"):
        assert _post(asgi_server, token, {"inventory": _report()}, method)[0] == 405
    assert HealthSample.objects.filter(cluster=cluster).count() == 6

    # a malformed report is refused with the same message as before
    status, body = _post(asgi_server, token, {"inventory": {"nodes": "many"}})
    assert status == 400
    assert "inventory.nodes must be a list of objects" in body["error"]["message"]

    # and once revoked, the next heartbeat is refused and the refusal audited
    agent_tokens_revoke(cluster=cluster, actor=None)
    status, body = _post(asgi_server, token, {"inventory": _report()})
    assert status == 401
    assert "revoked" in body["error"]["message"]
    assert AuditEvent.objects.filter(
        action="request.denied", request_path="/api/v1/agent/heartbeat"
    ).exists()
    assert HealthSample.objects.filter(cluster=cluster).count() == 6
