from __future__ import annotations

from typing import Any

from core.realtime.snapshot import SnapshotConsumer
from operations.selectors import operation_get
from operations.services import operation_group, operation_snapshot


class OperationConsumer(SnapshotConsumer):
    """`/ws/operations/<id>/`: a snapshot on connect, then coalesced updates."""

    message_type = "operation"

    def load_snapshot(self) -> dict[str, Any] | None:
        operation_id = self.scope["url_route"]["kwargs"]["operation_id"]
        operation = operation_get(user=self.scope["user"], operation_id=operation_id)
        return operation_snapshot(operation) if operation is not None else None

    def group_for(self, snapshot: dict[str, Any]) -> str:
        return operation_group(snapshot["id"])

    async def operation_update(self, event: dict[str, Any]) -> None:
        snapshot = event["snapshot"]
        final = snapshot.get("state") in ("succeeded", "failed", "canceled")
        await self.offer(snapshot, urgent=final)
