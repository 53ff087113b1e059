"""A consumer for one object's live view: authenticate, snapshot on connect, join the
object's group, resync on request. Subclasses say how to load the snapshot (scoped to
the user: unknown and forbidden look the same) and which group carries its updates."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from core.realtime.coalesce import CoalescingJsonConsumer
from core.realtime.guard import CLOSE_UNAUTHENTICATED

__all__ = ["CLOSE_NOT_FOUND", "CLOSE_UNAUTHENTICATED", "SnapshotConsumer"]
CLOSE_NOT_FOUND = 4404


class SnapshotConsumer(CoalescingJsonConsumer):
    def load_snapshot(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def group_for(self, snapshot: dict[str, Any]) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.group: str | None = None
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        snapshot = await database_sync_to_async(self.load_snapshot)()
        if snapshot is None:
            # Unknown and forbidden look the same: no probing for ids.
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = self.group_for(snapshot)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.start_guard()
        await self.send_snapshot(snapshot)

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    def still_visible(self) -> bool:
        # The same scoped read as on connect, with the refreshed user: gone or forbidden.
        return self.load_snapshot() is not None

    async def resync(self) -> None:
        snapshot = await database_sync_to_async(self.load_snapshot)()
        if snapshot is not None:
            await self.send_snapshot(snapshot)
