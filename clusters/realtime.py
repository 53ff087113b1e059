"""Pushing cluster changes to browsers (fleet overview and cluster page groups).

A change is published once, to the cluster's group (its page), its team's fleet group
(members' overviews) and the all-teams fleet group (superusers). It carries the team's
counts by status, counted once by the publisher, so the hundreds of overviews that receive
it do no database work of their own; `counted_at` (the counting statement's start on the
database clock) lets a consumer drop counts that arrive out of order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from clusters.models import Cluster

logger = logging.getLogger(__name__)

FLEET_GROUP = "fleet"  # every cluster change; superusers' overviews

_TEAM_COUNTS_SQL = """
SELECT statement_timestamp(), coalesce(json_object_agg(status, n), '{}')
FROM (SELECT status, count(*) AS n FROM clusters_cluster WHERE team_id = %s GROUP BY status) s
"""

_COUNTS_BY_TEAM_SQL = """
SELECT statement_timestamp(), coalesce(json_object_agg(team_id, counts), '{}')
FROM (
    SELECT team_id, json_object_agg(status, n) AS counts
    FROM (
        SELECT team_id, status, count(*) AS n FROM clusters_cluster
        WHERE %s OR team_id = ANY(%s) GROUP BY team_id, status
    ) per_status
    GROUP BY team_id
) per_team
"""


def cluster_group(cluster_id: int) -> str:
    return f"cluster.{cluster_id}"


def team_fleet_group(team_id: int) -> str:
    return f"fleet.team.{team_id}"


@dataclass(frozen=True)
class TeamCounts:
    """A team's clusters by status, as of `counted_at` (epoch seconds, database clock)."""

    counted_at: float
    counts: dict[str, int]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def team_counts(team_id: int) -> TeamCounts:
    with connection.cursor() as cursor:
        cursor.execute(_TEAM_COUNTS_SQL, [team_id])
        at, counts = cursor.fetchone()
    return TeamCounts(at.timestamp(), {str(k): int(v) for k, v in _json(counts).items()})


def counts_by_team(*, team_ids: list[int] | None) -> dict[int, TeamCounts]:
    """Counts of every team in `team_ids` (every team when None), in one statement. A team
    with no cluster is present with no counts, so a later change to it is not taken for old."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_BY_TEAM_SQL, [team_ids is None, team_ids or []])
        at, by_team = cursor.fetchone()
    found: dict[int, dict[str, int]] = {team_id: {} for team_id in team_ids or []}
    for team_id, counts in _json(by_team).items():
        found[int(team_id)] = {str(k): int(v) for k, v in counts.items()}
    return {team_id: TeamCounts(at.timestamp(), counts) for team_id, counts in found.items()}


def cluster_snapshot(cluster: Cluster) -> dict[str, Any]:
    """The public state of a cluster (no credential, ever)."""
    return {
        "id": cluster.pk,
        "name": cluster.name,
        "status": cluster.status,
        "status_reason": cluster.status_reason,
        "status_message": cluster.status_message,
        "kubernetes_version": cluster.kubernetes_version,
        "node_count": cluster.node_count,
        "nodes_ready": cluster.nodes_ready,
        "last_seen_at": cluster.last_seen_at.isoformat() if cluster.last_seen_at else None,
    }


def _send(cluster_id: int) -> None:
    try:
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        layer = get_channel_layer()
        if cluster is None or layer is None:
            return
        counted = team_counts(cluster.team_id)
        message = {
            "type": "cluster.update",
            "team_id": cluster.team_id,
            "snapshot": cluster_snapshot(cluster),
            "team_counts": counted.counts,
            "counted_at": counted.counted_at,
        }
        for group in (cluster_group(cluster_id), team_fleet_group(cluster.team_id), FLEET_GROUP):
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # Browsers re-fetch the snapshot when they reconnect; a Redis outage must not fail
        # the collection.
        logger.warning("could not publish cluster %s", cluster_id, exc_info=True)


def publish_cluster_on_commit(cluster_id: int) -> None:
    transaction.on_commit(lambda: _send(cluster_id))
