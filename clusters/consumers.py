from __future__ import annotations

from typing import Any

from clusters.realtime import cluster_group, cluster_snapshot
from clusters.selectors import cluster_get
from core.realtime.snapshot import SnapshotConsumer


class ClusterConsumer(SnapshotConsumer):
    """`/ws/clusters/<name>/`: the cluster's status on connect, then coalesced changes."""

    message_type = "cluster"

    def load_snapshot(self) -> dict[str, Any] | None:
        cluster = cluster_get(
            user=self.scope["user"], name=self.scope["url_route"]["kwargs"]["name"]
        )
        return cluster_snapshot(cluster) if cluster is not None else None

    def group_for(self, snapshot: dict[str, Any]) -> str:
        return cluster_group(snapshot["id"])

    async def cluster_update(self, event: dict[str, Any]) -> None:
        await self.offer(event["snapshot"])
