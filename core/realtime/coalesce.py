"""A websocket consumer base that coalesces updates, rate-limits resyncs and keeps
checking that its user may still receive them.

Group events carry full snapshots, so only the newest one matters: a view receives at
most one message per `interval` seconds (a final one is sent at once), each with a
per-connection sequence number. A client that sees a gap in `seq` asks for a resync; it
gets one at most every KEELSON_WS_RESYNC_INTERVAL seconds (a request inside the interval
is answered when it ends, once). Authorization is re-checked as `core.realtime.guard`
explains; a socket whose user may no longer see it is closed (4401 / 4403).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.api.parsers import JSONRejected, strict_json_loads
from core.realtime.guard import CLOSE_FORBIDDEN, session_problem, user_group

# What a client sends is a small command ({"type": "resync"}): anything longer is refused.
MAX_CLIENT_MESSAGE = 4096


class CoalescingJsonConsumer(AsyncJsonWebsocketConsumer):
    interval: float = 1.0
    message_type: str = "update"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seq = 0
        self._last_sent = 0.0
        self._pending: dict[str, Any] | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_resync = float("-inf")
        self._resync_handle: asyncio.TimerHandle | None = None
        self._guard_task: asyncio.Task[None] | None = None
        self._user_group: str | None = None
        self._checked_at = 0.0
        self._closed = False

    # --- what subclasses provide --------------------------------------------------------
    async def resync(self) -> None:
        """Send the current snapshot again."""

    def still_visible(self) -> bool:
        """(In a thread.) Whether the (refreshed) user may still see this view."""
        return True

    # --- sending ------------------------------------------------------------------------
    async def send_snapshot(self, snapshot: dict[str, Any], *, kind: str = "snapshot") -> None:
        if self._closed:
            return
        self._seq += 1
        self._last_sent = time.monotonic()
        self._pending = None
        await self.send_json({"type": kind, "seq": self._seq, "data": snapshot})

    async def offer(self, snapshot: dict[str, Any], *, urgent: bool = False) -> None:
        """Queue `snapshot`; send now if the interval has passed or it is urgent."""
        if self._closed or not await self._authorized_if_due():
            return
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

    # --- what the client sends ----------------------------------------------------------
    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        if len(text_data) > MAX_CLIENT_MESSAGE:
            raise JSONRejected("message too long")
        return strict_json_loads(text_data)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data)
        except ValueError:  # JSONRejected included: too long, too deep, not JSON
            too_big = bool(text_data) and len(text_data or "") > MAX_CLIENT_MESSAGE
            await self.close(code=1009 if too_big else 1003)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resync":
            await self.request_resync()

    async def request_resync(self) -> None:
        """A resync now, or once when the rate limit allows (further asks are merged)."""
        if self._closed or self._resync_handle is not None:
            return
        wait = settings.KEELSON_WS_RESYNC_INTERVAL - (time.monotonic() - self._last_resync)
        if wait <= 0:
            await self._resync_now()
            return
        loop = asyncio.get_running_loop()
        self._resync_handle = loop.call_later(
            wait, lambda: asyncio.ensure_future(self._resync_now())
        )

    async def _resync_now(self) -> None:
        self._resync_handle = None
        self._last_resync = time.monotonic()
        if not self._closed and await self._authorized_if_due():
            await self.resync()

    # --- authorization, again -----------------------------------------------------------
    async def start_guard(self) -> None:
        """After accept: hear `auth.recheck` for this user and re-check periodically."""
        self._checked_at = time.monotonic()
        user = self.scope.get("user")
        if user is not None and user.pk is not None:
            self._user_group = user_group(user.pk)
            await self.channel_layer.group_add(self._user_group, self.channel_name)
        self._guard_task = asyncio.ensure_future(self._guard_loop())

    async def _guard_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(settings.KEELSON_WS_AUTH_RECHECK_SECONDS)
            if not await self._authorized():
                return

    def _problem(self) -> int | None:
        code = session_problem(self.scope)
        if code is None and not self.still_visible():
            code = CLOSE_FORBIDDEN
        return code

    async def _authorized(self) -> bool:
        if self._closed:
            return False
        self._checked_at = time.monotonic()
        code = await database_sync_to_async(self._problem)()
        if code is None:
            return True
        await self._shut(code)
        return False

    async def _authorized_if_due(self) -> bool:
        due = time.monotonic() - self._checked_at >= settings.KEELSON_WS_AUTH_RECHECK_SECONDS
        return await self._authorized() if due else True

    async def auth_recheck(self, event: dict[str, Any]) -> None:
        """A logout or membership change of this user (see core.realtime.guard)."""
        ended = event.get("ended_session")
        own = getattr(self.scope.get("session"), "session_key", None)
        if ended and ended == own:
            await self._shut(4401)
            return
        await self._authorized()

    async def _shut(self, code: int) -> None:
        self._closed = True
        self._cancel_flush()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        self._closed = True
        self._cancel_flush()
        if self._resync_handle is not None:
            self._resync_handle.cancel()
        if self._guard_task is not None and self._guard_task is not asyncio.current_task():
            self._guard_task.cancel()
        if self._user_group is not None:
            await self.channel_layer.group_discard(self._user_group, self.channel_name)
