"""Issue 21 #10 (and #7's resync rate): a live view stops streaming once its user logs out,
leaves the team, or loses access without anyone saying so; resyncs are rate-limited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.choices import Role
from accounts.models import Membership
from accounts.services import membership_remove
from fleet.asgi import application
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _signed_in(user: Any) -> tuple[Client, list[tuple[bytes, bytes]]]:
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    return client, [(b"cookie", f"sessionid={session}".encode()), (b"origin", b"http://localhost")]


async def _next(communicator: WebsocketCommunicator, within: float) -> dict[str, Any] | None:
    """The next message the server sends within `within` seconds, else None (polled:
    asgiref's own timeout would cancel the application)."""
    if await communicator.receive_nothing(timeout=within, interval=0.05):
        return None
    output: dict[str, Any] = await communicator.receive_output(timeout=1)
    return output


async def _closed_with(communicator: WebsocketCommunicator, within: float) -> int | None:
    """The close code the server sends within `within` seconds (messages before it are
    skipped), or None if the socket is still open."""
    deadline = asyncio.get_running_loop().time() + within
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        output = await _next(communicator, left)
        if output is None:
            return None
        if output["type"] == "websocket.close":
            return int(output.get("code", 1000))
    return None


def _viewer_and_cluster() -> tuple[Any, Any, Any]:
    team = make_team()
    user = make_user()
    add_member(team, user, Role.VIEWER)
    return user, team, make_cluster(team=team, name="eu-prod")


def test_logout_closes_the_sessions_sockets_at_once() -> None:
    user, _, _ = _viewer_and_cluster()
    client, headers = _signed_in(user)

    async def scenario() -> tuple[int | None, int | None]:
        fleet = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        cluster = WebsocketCommunicator(application, "/ws/clusters/eu-prod/", headers=headers)
        assert (await fleet.connect())[0] and (await cluster.connect())[0]
        await database_sync_to_async(client.post)("/accounts/logout/")
        return await _closed_with(fleet, 5), await _closed_with(cluster, 5)

    assert asyncio.run(scenario()) == (4401, 4401)


def test_removal_from_the_team_closes_its_sockets() -> None:
    user, team, _ = _viewer_and_cluster()
    _, headers = _signed_in(user)

    async def scenario() -> tuple[int | None, int | None]:
        fleet = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        cluster = WebsocketCommunicator(application, "/ws/clusters/eu-prod/", headers=headers)
        assert (await fleet.connect())[0] and (await cluster.connect())[0]
        await database_sync_to_async(membership_remove)(team=team, user=user, actor=None)
        return await _closed_with(fleet, 5), await _closed_with(cluster, 5)

    assert asyncio.run(scenario()) == (4403, 4403)


def test_access_lost_without_notice_is_found_by_the_periodic_check(settings: Any) -> None:
    settings.KEELSON_WS_AUTH_RECHECK_SECONDS = 1
    user, team, _ = _viewer_and_cluster()
    _, headers = _signed_in(user)

    async def scenario() -> tuple[int | None, int | None]:
        cluster = WebsocketCommunicator(application, "/ws/clusters/eu-prod/", headers=headers)
        assert (await cluster.connect())[0]
        still_open = await _closed_with(cluster, 1.5)  # nothing changed: stays open
        # the membership disappears behind the services' back (no notification)
        await database_sync_to_async(Membership.objects.filter(team=team, user=user).delete)()
        return still_open, await _closed_with(cluster, 3)

    assert asyncio.run(scenario()) == (None, 4403)


def test_resyncs_are_rate_limited(settings: Any) -> None:
    settings.KEELSON_WS_RESYNC_INTERVAL = 2
    user, _, _ = _viewer_and_cluster()
    _, headers = _signed_in(user)

    async def scenario() -> tuple[int, int]:
        cluster = WebsocketCommunicator(application, "/ws/clusters/eu-prod/", headers=headers)
        assert (await cluster.connect())[0]
        await cluster.receive_json_from(timeout=5)  # the snapshot on connect
        for _ in range(50):
            await cluster.send_json_to({"type": "resync"})
        at_once, later = 0, 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while await _next(cluster, 3) is not None:
            if loop.time() - start < 1:
                at_once += 1
            else:
                later += 1
        await cluster.disconnect()
        return at_once, later

    # 50 asks: one answer at once, one more when the interval has passed, no more
    assert asyncio.run(scenario()) == (1, 1)
