"""A pull agent's heartbeat, on its common path in one SQL statement.

Most heartbeats change nothing but numbers: the agent's token is valid and the cluster's
status is what its inventory says it is. Such a heartbeat is one statement that checks the
token (hashed, not revoked, not expired, used before: revocation takes effect at the next
heartbeat, and a rotated token's first use takes the full path, which retires the old one),
updates the cluster row exactly as a full observation would, stores the inventory and
inserts the health sample. Anything else (the first report, a status the hysteresis must
weigh, a late report) takes the full path of `clusters.services.collection.agent_report`,
which also records transitions, publishes them and queues the first policy evaluation.

The web runs it on a few long-lived threads (`heartbeat_in_thread`) that keep their
database connections while heartbeats keep coming, instead of opening one per request as
Django does under ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import DatabaseError, connection
from django.utils import timezone

from clusters.health import Observation, observe_inventory
from clusters.models import AgentToken, Cluster
from clusters.services.collection import agent_report
from clusters.services.registration import agent_authenticate, token_hash
from kube.inventory import Inventory

# The cluster columns and the health sample are those `cluster_record_observation` writes
# (clusters/services/collection.py): keep both in step with it.
_STATEMENT = """
WITH agent AS (
    UPDATE clusters_agenttoken SET last_used_at = %(at)s
    WHERE token_hash = %(token_hash)s AND kind = 'agent' AND revoked_at IS NULL
        AND last_used_at IS NOT NULL AND (expires_at IS NULL OR expires_at > %(at)s)
    RETURNING cluster_id
), cluster AS (
    UPDATE clusters_cluster AS c SET
        status_reason = %(reason)s,
        status_message = %(message)s,
        pending_status = '',
        pending_count = 0,
        conditions = %(conditions)s,
        kubernetes_version = %(kubernetes_version)s,
        node_count = %(node_count)s,
        nodes_ready = %(nodes_ready)s,
        capacity_cpu_millis = %(capacity_cpu_millis)s,
        capacity_memory_bytes = %(capacity_memory_bytes)s,
        capacity_gpu = %(capacity_gpu)s,
        capacity_pods = %(capacity_pods)s,
        allocatable_cpu_millis = %(allocatable_cpu_millis)s,
        allocatable_memory_bytes = %(allocatable_memory_bytes)s,
        allocatable_gpu = %(allocatable_gpu)s,
        allocatable_pods = %(allocatable_pods)s,
        requested_cpu_millis = %(requested_cpu_millis)s,
        requested_memory_bytes = %(requested_memory_bytes)s,
        api_latency_ms = %(api_latency_ms)s,
        last_seen_at = %(at)s,
        last_probe_at = %(at)s,
        updated_at = %(at)s
    FROM agent
    WHERE c.id = agent.cluster_id
        AND c.status = %(status)s
        AND (c.last_probe_at IS NULL OR c.last_probe_at <= %(at)s)
        AND EXISTS (SELECT 1 FROM clusters_clusterinventory AS i WHERE i.cluster_id = c.id)
    RETURNING c.id, c.name, c.status
), inventory AS (
    UPDATE clusters_clusterinventory AS i SET collected_at = %(at)s, data = %(data)s
    FROM cluster WHERE i.cluster_id = cluster.id
), sample AS (
    INSERT INTO clusters_healthsample (
        cluster_id, at, status, api_latency_ms, nodes_total, nodes_ready, pods_running,
        pods_pending, pods_failed, cpu_requested_millis, memory_requested_bytes, warning_events
    )
    SELECT cluster.id, %(at)s, cluster.status, %(api_latency_ms)s, %(node_count)s,
        %(nodes_ready)s, %(pods_running)s, %(pods_pending)s, %(pods_failed)s,
        %(requested_cpu_millis)s, %(requested_memory_bytes)s, %(warning_events)s
    FROM cluster
)
SELECT name, status FROM cluster
"""

# The statement's parameters and their types: it is prepared once per connection (its
# plan costs about as much PostgreSQL CPU as running it).
_PARAMETERS = {
    "at": "timestamptz",
    "token_hash": "text",
    "status": "text",
    "reason": "text",
    "message": "text",
    "conditions": "jsonb",
    "kubernetes_version": "text",
    "node_count": "bigint",
    "nodes_ready": "bigint",
    "capacity_cpu_millis": "bigint",
    "capacity_memory_bytes": "bigint",
    "capacity_gpu": "bigint",
    "capacity_pods": "bigint",
    "allocatable_cpu_millis": "bigint",
    "allocatable_memory_bytes": "bigint",
    "allocatable_gpu": "bigint",
    "allocatable_pods": "bigint",
    "requested_cpu_millis": "bigint",
    "requested_memory_bytes": "bigint",
    "api_latency_ms": "float8",
    "data": "jsonb",
    "pods_running": "bigint",
    "pods_pending": "bigint",
    "pods_failed": "bigint",
    "warning_events": "bigint",
}
_NAMES = list(_PARAMETERS)
_PREPARE = "PREPARE keelson_agent_heartbeat ({}) AS {}".format(
    ", ".join(_PARAMETERS.values()),
    re.sub(r"%\((\w+)\)s", lambda m: f"${_NAMES.index(m.group(1)) + 1}", _STATEMENT),
)
_EXECUTE = "EXECUTE keelson_agent_heartbeat ({})".format(", ".join(["%s"] * len(_NAMES)))
_prepared: weakref.WeakSet[Any] = weakref.WeakSet()  # psycopg2 connections


@dataclass(frozen=True)
class HeartbeatReply:
    cluster: str
    status: str


def _statement_params(
    inventory: Inventory, observation: Observation, digest: str, at: datetime
) -> dict[str, Any]:
    pods = inventory.pods_by_phase
    return {
        "at": at,
        "token_hash": digest,
        "status": observation.status.value,
        "reason": observation.reason[:64],
        "message": observation.message[:500],
        "conditions": json.dumps([c.as_json() for c in observation.conditions]),
        "kubernetes_version": inventory.kubernetes_version[:32],
        "node_count": len(inventory.nodes),
        "nodes_ready": inventory.nodes_ready,
        "capacity_cpu_millis": inventory.total("capacity", "cpu_millis"),
        "capacity_memory_bytes": inventory.total("capacity", "memory_bytes"),
        "capacity_gpu": inventory.total("capacity", "gpu"),
        "capacity_pods": inventory.total("capacity", "pods"),
        "allocatable_cpu_millis": inventory.total("allocatable", "cpu_millis"),
        "allocatable_memory_bytes": inventory.total("allocatable", "memory_bytes"),
        "allocatable_gpu": inventory.total("allocatable", "gpu"),
        "allocatable_pods": inventory.total("allocatable", "pods"),
        "requested_cpu_millis": inventory.requested_cpu_millis,
        "requested_memory_bytes": inventory.requested_memory_bytes,
        "api_latency_ms": inventory.api_latency_ms,
        "data": json.dumps(inventory.as_json()),
        "pods_running": pods.get("Running", 0),
        "pods_pending": pods.get("Pending", 0),
        "pods_failed": pods.get("Failed", 0) + inventory.pods_crashlooping,
        "warning_events": inventory.warning_events,
    }


def heartbeat_steady(*, token: str, inventory: Inventory, at: datetime) -> HeartbeatReply | None:
    """The one-statement path; None when the token is refused or the status may change
    (the caller then takes the full path, which says which)."""
    params = _statement_params(inventory, observe_inventory(inventory), token_hash(token), at)
    with connection.cursor() as cursor:
        if connection.connection not in _prepared:
            cursor.execute(_PREPARE)
            _prepared.add(connection.connection)
        cursor.execute(_EXECUTE, [params[name] for name in _NAMES])
        row = cursor.fetchone()
    return HeartbeatReply(cluster=row[0], status=row[1]) if row else None


def heartbeat_full(*, cluster: Cluster, inventory: Inventory) -> HeartbeatReply:
    """Record the heartbeat as a probe with hysteresis, transitions and publishing."""
    agent_report(cluster=cluster, inventory=inventory)
    cluster.refresh_from_db(fields=["status"])
    return HeartbeatReply(cluster=cluster.name, status=cluster.status)


def agent_heartbeat(
    *, token: str, inventory: Inventory, at: datetime | None = None
) -> HeartbeatReply:
    """Record an agent's heartbeat; raises `AgentAuthError` for a refused token."""
    steady = heartbeat_steady(token=token, inventory=inventory, at=at or timezone.now())
    if steady is not None:
        return steady
    cluster, row = agent_authenticate(token=token)
    AgentToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return heartbeat_full(cluster=cluster, inventory=inventory)


class _DatabaseThreads:
    """A few long-lived threads for heartbeats' database work, fed from one queue. Each
    keeps its connection while work keeps coming and closes it after `idle` seconds
    without any, so an idle web process holds no connection (and a test database can be
    dropped)."""

    def __init__(self, size: int, idle: float) -> None:
        self.size, self.idle = size, idle
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]]]
        self._jobs = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, work: Callable[[], Any]) -> Any:
        if len(self._threads) < self.size:
            self._start()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put((work, future))
        return await future

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                name = f"heartbeat-db-{len(self._threads)}"
                thread = threading.Thread(target=self._serve, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while True:
            try:
                work, future = self._jobs.get(timeout=self.idle)
            except queue.Empty:
                _close_connection()
                continue
            if connection.connection is not None and connection.errors_occurred:
                _close_connection()  # a broken connection is replaced by a new one
            # As SyncToAsync marks its threads: async_to_sync in the work (publishing a
            # status change) then runs on the web's event loop, not on a new one each time.
            SyncToAsync.threadlocal.main_event_loop = future.get_loop()
            SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()
            try:
                result, error = work(), None
            except Exception as raised:
                result, error = None, raised
                if isinstance(raised, DatabaseError):
                    _close_connection()
            with contextlib.suppress(RuntimeError):  # the event loop has closed
                future.get_loop().call_soon_threadsafe(_settle, future, result, error)


def _close_connection() -> None:
    with contextlib.suppress(DatabaseError):
        connection.close()


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# Four threads keep PostgreSQL busy while the event loop parses the next requests.
_threads = _DatabaseThreads(size=4, idle=2.0)


async def heartbeat_in_thread(*, token: str, inventory: Inventory) -> HeartbeatReply:
    """`agent_heartbeat` from async code, on one of the heartbeat threads."""
    reply: HeartbeatReply = await _threads.run(
        lambda: agent_heartbeat(token=token, inventory=inventory)
    )
    return reply
