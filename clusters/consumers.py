from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from clusters.realtime import cluster_group, cluster_snapshot
from clusters.selectors import cluster_get
from fleet.realtime.coalesce import CoalescingJsonConsumer

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class ClusterConsumer(CoalescingJsonConsumer):
    """`/ws/clusters/<name>/`: the cluster's status on connect, then coalesced changes."""

    message_type = "cluster"

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.group: str | None = None
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.cluster_name = self.scope["url_route"]["kwargs"]["name"]
        snapshot = await self._load_snapshot()
        if snapshot is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = cluster_group(snapshot["id"])
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_snapshot(snapshot)

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resync":
            snapshot = await self._load_snapshot()
            if snapshot is not None:
                await self.send_snapshot(snapshot)

    async def cluster_update(self, event: dict[str, Any]) -> None:
        await self.offer(event["snapshot"])

    @database_sync_to_async
    def _load_snapshot(self) -> dict[str, Any] | None:
        cluster = cluster_get(user=self.scope["user"], name=self.cluster_name)
        return cluster_snapshot(cluster) if cluster is not None else None
