"""A websocket consumer base that coalesces updates.

Group events carry full snapshots, so only the newest one matters: a view receives at
most one message per `interval` seconds (a final one is sent at once), each with a
per-connection sequence number. A client that sees a gap in `seq` asks for a resync.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class CoalescingJsonConsumer(AsyncJsonWebsocketConsumer):
    interval: float = 1.0
    message_type: str = "update"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seq = 0
        self._last_sent = 0.0
        self._pending: dict[str, Any] | None = None
        self._flush_handle: asyncio.TimerHandle | None = None

    async def send_snapshot(self, snapshot: dict[str, Any], *, kind: str = "snapshot") -> None:
        self._seq += 1
        self._last_sent = time.monotonic()
        self._pending = None
        await self.send_json({"type": kind, "seq": self._seq, "data": snapshot})

    async def offer(self, snapshot: dict[str, Any], *, urgent: bool = False) -> None:
        """Queue `snapshot`; send now if the interval has passed or it is urgent."""
        self._pending = snapshot
        wait = self.interval - (time.monotonic() - self._last_sent)
        if urgent or wait <= 0:
            self._cancel_flush()
            await self.send_snapshot(snapshot, kind=self.message_type)
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(wait, lambda: asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        self._flush_handle = None
        if self._pending is not None:
            await self.send_snapshot(self._pending, kind=self.message_type)

    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    async def disconnect(self, code: int) -> None:
        self._cancel_flush()
