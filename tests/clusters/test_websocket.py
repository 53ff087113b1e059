"""The cluster page's websocket: a snapshot on connect, then status changes, team-scoped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from accounts.choices import Role
from clusters.services.lifecycle import cluster_update
from fleet.asgi import application
from tests.factories import add_member, make_cluster, make_team, make_user
from tests.fleet.test_websocket import _headers_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_cluster_changes_reach_a_member_and_outsiders_are_refused() -> None:
    # given
    team = make_team()
    cluster = make_cluster(team=team, name="ws-1", status="ready")
    member = make_user()
    add_member(team, member, Role.VIEWER)
    headers, outsider = _headers_for(member), _headers_for(make_user())

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        refused = WebsocketCommunicator(application, "/ws/clusters/ws-1/", headers=outsider)
        connected, code = await refused.connect()
        assert not connected
        communicator = WebsocketCommunicator(application, "/ws/clusters/ws-1/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        messages = [await communicator.receive_json_from(timeout=5)]
        await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: cluster_update(cluster=cluster, actor=None, changes={"display_name": "W"}),
        )
        messages.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return messages, code

    messages, code = asyncio.run(scenario())
    # then
    assert code == 4404
    assert [m["seq"] for m in messages] == [1, 2]
    assert messages[0]["data"]["status"] == "ready"
    assert messages[1]["type"] == "cluster"
    assert set(messages[1]["data"]) == {
        "id",
        "name",
        "status",
        "status_reason",
        "status_message",
        "kubernetes_version",
        "node_count",
        "nodes_ready",
        "last_seen_at",
    }
