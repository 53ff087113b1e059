from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from fleet.operations.selectors import operation_get
from fleet.operations.services import operation_group, operation_snapshot
from fleet.realtime.coalesce import CoalescingJsonConsumer

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class OperationConsumer(CoalescingJsonConsumer):
    """`/ws/operations/<id>/`: a snapshot on connect, then coalesced updates."""

    message_type = "operation"

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.group: str | None = None
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.operation_id = self.scope["url_route"]["kwargs"]["operation_id"]
        snapshot = await self._load_snapshot()
        if snapshot is None:
            # Unknown and forbidden look the same: no probing for ids.
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = operation_group(self.operation_id)
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

    async def operation_update(self, event: dict[str, Any]) -> None:
        snapshot = event["snapshot"]
        final = snapshot.get("state") in ("succeeded", "failed", "canceled")
        await self.offer(snapshot, urgent=final)

    @database_sync_to_async
    def _load_snapshot(self) -> dict[str, Any] | None:
        operation = operation_get(user=self.scope["user"], operation_id=self.operation_id)
        return operation_snapshot(operation) if operation is not None else None
