"""Pushing cluster changes to browsers (fleet overview and cluster page groups)."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from clusters.models import Cluster

logger = logging.getLogger(__name__)

FLEET_GROUP = "fleet"


def cluster_group(cluster_id: int) -> str:
    return f"cluster.{cluster_id}"


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
        # team_id lets the fleet-wide consumer forward an update only to those who may see it.
        message = {
            "type": "cluster.update",
            "team_id": cluster.team_id,
            "snapshot": cluster_snapshot(cluster),
        }
        async_to_sync(layer.group_send)(cluster_group(cluster_id), message)
        async_to_sync(layer.group_send)(FLEET_GROUP, message)
    except Exception:
        # Browsers re-fetch the snapshot when they reconnect; a Redis outage must not fail
        # the collection.
        logger.warning("could not publish cluster %s", cluster_id, exc_info=True)


def publish_cluster_on_commit(cluster_id: int) -> None:
    transaction.on_commit(lambda: _send(cluster_id))
