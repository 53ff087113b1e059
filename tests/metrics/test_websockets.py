"""`keelson_websocket_connections`: open sockets through the real ASGI application."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from fleet.asgi import application
from metrics.process import WEBSOCKETS
from tests.factories import make_user
from tests.fleet.test_websocket import _headers_for

pytestmark = pytest.mark.django_db(transaction=True)


def _open() -> float:
    return float(WEBSOCKETS._value.get())


def test_accepted_sockets_count_until_they_close() -> None:
    headers = _headers_for(make_user(superuser=True))
    before = _open()

    async def scenario() -> list[float]:
        seen = []
        first = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        second = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        assert (await first.connect())[0]
        assert (await second.connect())[0]
        seen.append(_open())
        await first.disconnect()
        seen.append(_open())
        await second.disconnect()
        seen.append(_open())
        # Refused (no session): never counted.
        anonymous = WebsocketCommunicator(
            application, "/ws/fleet/", headers=[(b"origin", b"http://localhost")]
        )
        connected, _ = await anonymous.connect()
        assert not connected
        seen.append(_open())
        return seen

    assert asyncio.run(scenario()) == [before + 2, before + 1, before, before]
