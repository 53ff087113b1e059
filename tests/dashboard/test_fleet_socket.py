"""The fleet socket at scale: a change is counted once by its publisher, and the hundreds of
overviews that receive it add it up without database work of their own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from accounts.choices import Role
from clusters.choices import ClusterStatus
from clusters.realtime import FLEET_GROUP, counts_by_team, team_counts, team_fleet_group
from clusters.services.lifecycle import cluster_update
from fleet.asgi import application
from tests.factories import add_member, make_cluster, make_team, make_user
from tests.fleet.test_websocket import _headers_for

pytestmark = pytest.mark.django_db(transaction=True)
ZERO = dict.fromkeys(ClusterStatus.values, 0)


def _event(team_id: int, counts: dict[str, int], counted_at: float) -> dict[str, Any]:
    snapshot = {"id": 0, "name": "synthetic", "status": "ready"}
    return {
        "type": "cluster.update",
        "team_id": team_id,
        "snapshot": snapshot,
        "team_counts": counts,
        "counted_at": counted_at,
    }


def test_counts_are_per_team_and_stamped_by_the_database_clock() -> None:
    shop, edge, empty = make_team(), make_team(), make_team()
    make_cluster(team=shop, status="ready")
    make_cluster(team=shop, status="degraded")
    make_cluster(team=edge, status="unreachable")

    one = team_counts(shop.pk)
    every = counts_by_team(team_ids=None)
    some = counts_by_team(team_ids=[edge.pk, empty.pk])

    assert one.counts == {"ready": 1, "degraded": 1}
    assert every[shop.pk].counts == one.counts and every[edge.pk].counts == {"unreachable": 1}
    assert some == {edge.pk: some[edge.pk], empty.pk: some[empty.pk]}
    assert some[empty.pk].counts == {}
    assert team_counts(shop.pk).counted_at >= one.counted_at > 0


def test_a_member_of_two_teams_sees_both_and_trusts_the_counts_in_the_event() -> None:
    shop, edge, other = make_team(), make_team(), make_team()
    shop_cluster = make_cluster(team=shop, name="shop-1", status="ready")
    make_cluster(team=edge, name="edge-1", status="ready")
    make_cluster(team=other, name="other-1", status="ready")
    user = make_user()
    add_member(shop, user, Role.VIEWER)
    add_member(edge, user, Role.OPERATOR)
    headers = _headers_for(user)

    async def scenario() -> list[dict[str, Any]]:
        socket = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        assert (await socket.connect())[0]
        seen = [await socket.receive_json_from(timeout=5)]
        layer = get_channel_layer()
        # An event carries the team's counts: the consumer takes them as they are (no query
        # of its own), and drops counts older than the ones it has.
        await layer.group_send(team_fleet_group(edge.pk), _event(edge.pk, {"ready": 40}, 4e9))
        seen.append(await socket.receive_json_from(timeout=5))
        await layer.group_send(team_fleet_group(edge.pk), _event(edge.pk, {"ready": 7}, 1.0))
        seen.append(await socket.receive_json_from(timeout=5))
        # another team's change is not even delivered to this socket's groups
        await layer.group_send(FLEET_GROUP, _event(other.pk, {"ready": 99}, 4e9))
        assert await socket.receive_nothing(timeout=1.5)
        # a real change, published by the service on commit
        await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: cluster_update(
                cluster=shop_cluster, actor=None, changes={"display_name": "Shop one"}
            ),
        )
        seen.append(await socket.receive_json_from(timeout=5))
        await socket.disconnect()
        return seen

    first, newer, older, real = asyncio.run(scenario())
    assert first["data"]["counts"] == {**ZERO, "ready": 2}
    assert newer["data"]["counts"] == {**ZERO, "ready": 41}
    assert older["data"]["counts"] == {**ZERO, "ready": 41}  # out-of-order counts ignored
    assert real["data"]["changed"]["name"] == "shop-1"
    assert real["data"]["counts"] == {**ZERO, "ready": 41}  # shop 1 + edge's newest 40


def test_a_superuser_sees_every_team() -> None:
    make_cluster(team=make_team(), status="ready")
    make_cluster(team=make_team(), status="degraded")
    team = make_team()
    cluster = make_cluster(team=team, name="late", status="unknown")
    headers = _headers_for(make_user(superuser=True))

    async def scenario() -> list[dict[str, Any]]:
        socket = WebsocketCommunicator(application, "/ws/fleet/", headers=headers)
        assert (await socket.connect())[0]
        seen = [await socket.receive_json_from(timeout=5)]
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: cluster_update(cluster=cluster, actor=None, changes={"display_name": "L"})
        )
        seen.append(await socket.receive_json_from(timeout=5))
        await socket.disconnect()
        return seen

    first, change = asyncio.run(scenario())
    assert first["data"]["counts"] == {**ZERO, "ready": 1, "degraded": 1, "unknown": 1}
    assert change["data"]["changed"]["name"] == "late"
    assert change["data"]["counts"] == first["data"]["counts"]
