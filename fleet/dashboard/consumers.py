from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Count

from clusters.realtime import FLEET_GROUP
from clusters.selectors import cluster_list
from fleet.accounts.choices import Role
from fleet.accounts.selectors import team_ids_with_role
from fleet.realtime.coalesce import CoalescingJsonConsumer
from fleet.realtime.snapshot import CLOSE_UNAUTHENTICATED


class FleetConsumer(CoalescingJsonConsumer):
    """`/ws/fleet/`: counts by status on connect, then (coalesced, ≤ 1/s) a message per
    change of a cluster the user may see; the page re-fetches its panels on each."""

    message_type = "fleet"

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.joined = False
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.all_teams = bool(getattr(user, "is_superuser", False))
        self.team_ids = set(
            await database_sync_to_async(team_ids_with_role)(user=user, minimum=Role.VIEWER)
        )
        await self.channel_layer.group_add(FLEET_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_snapshot(await self._counts())

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.joined:
            await self.channel_layer.group_discard(FLEET_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resync":
            await self.send_snapshot(await self._counts())

    async def cluster_update(self, event: dict[str, Any]) -> None:
        if not self.all_teams and event.get("team_id") not in self.team_ids:
            return  # not this user's cluster: say nothing about it
        await self.offer({"changed": event["snapshot"], **await self._counts()})

    @database_sync_to_async
    def _counts(self) -> dict[str, Any]:
        rows = cluster_list(user=self.scope["user"]).values_list("status").annotate(n=Count("id"))
        return {"counts": dict(rows.order_by())}
