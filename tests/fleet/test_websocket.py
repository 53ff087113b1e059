"""Websockets through the real Redis channel layer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.db import connection
from django.test import Client

from fleet.asgi import application
from operations.choices import OperationState
from operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_update,
)
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _headers_for(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    return [(b"cookie", f"sessionid={session}".encode()), (b"origin", b"http://localhost")]


def test_channel_layer_round_trip_through_redis() -> None:
    async def scenario() -> dict[str, Any]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello", "text": "over redis"})
        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    # when
    message = asyncio.run(scenario())
    # then
    assert message == {"type": "hello", "text": "over redis"}
    assert isinstance(get_channel_layer(), RedisChannelLayer)


def test_operation_progress_reaches_a_websocket_client() -> None:
    # given
    user = make_user()
    operation = operation_create(kind="test.progress", created_by=user)
    headers = _headers_for(user)

    async def scenario() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(
            application, f"/ws/operations/{operation.pk}/", headers=headers
        )
        connected, _ = await communicator.connect()
        assert connected
        received = [await communicator.receive_json_from(timeout=5)]
        await database_sync_to_async(operation_claim)(operation_id=operation.pk)
        received.append(await communicator.receive_json_from(timeout=5))
        await database_sync_to_async(operation_update)(
            operation_id=operation.pk, progress=40, message="halfway", log="step 2 of 5"
        )
        received.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return received

    # when
    messages = asyncio.run(scenario())
    # then
    assert [m["seq"] for m in messages] == [1, 2, 3]
    assert messages[0]["type"] == "snapshot"
    assert messages[0]["data"]["state"] == "pending"
    assert messages[-1]["data"]["progress"] == 40
    assert messages[-1]["data"]["message"] == "halfway"
    assert messages[-1]["data"]["log"][-1]["text"] == "step 2 of 5"


def test_updates_are_coalesced_to_about_one_a_second_and_final_state_is_sent_at_once() -> None:
    # given
    user = make_user()
    operation = operation_create(kind="test.coalesce", created_by=user)
    operation_claim(operation_id=operation.pk)
    headers = _headers_for(user)

    def burst() -> None:
        for percent in range(1, 21):
            operation_update(operation_id=operation.pk, progress=percent)
        operation_finish(operation_id=operation.pk, state=OperationState.SUCCEEDED, message="done")
        connection.close()  # this thread's own connection

    async def scenario() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(
            application, f"/ws/operations/{operation.pk}/", headers=headers
        )
        await communicator.connect()
        received = [await communicator.receive_json_from(timeout=5)]
        thread = threading.Thread(target=burst)
        thread.start()
        while received[-1]["data"]["state"] != "succeeded":
            received.append(await communicator.receive_json_from(timeout=5))
        thread.join()
        await communicator.disconnect()
        return received

    # when
    messages = asyncio.run(scenario())
    # then 21 changes arrive as a handful of messages, in sequence, ending complete
    assert len(messages) <= 4
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert messages[-1]["data"]["progress"] == 100


def test_websocket_refuses_anonymous_and_other_teams() -> None:
    # given
    owner, outsider = make_user(), make_user()
    team = make_team()
    add_member(team, owner)
    operation = operation_create(kind="test.private", created_by=owner, team=team)

    async def attempt(headers: list[tuple[bytes, bytes]]) -> tuple[bool, Any]:
        communicator = WebsocketCommunicator(
            application, f"/ws/operations/{operation.pk}/", headers=headers
        )
        return await communicator.connect()

    # when
    anonymous = asyncio.run(attempt([(b"origin", b"http://localhost")]))
    other_team = asyncio.run(attempt(_headers_for(outsider)))
    # then
    assert anonymous == (False, 4401)
    assert other_team == (False, 4404)
