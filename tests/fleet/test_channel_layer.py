"""The Channels layer's Redis pool: bursts wait for a connection instead of failing, and a
blocking receive never outlives its own socket timeout."""

from __future__ import annotations

import asyncio

from django.conf import settings
from redis import asyncio as aioredis

from core.realtime.layer import BlockingPoolChannelLayer


def _layer(max_connections: int) -> BlockingPoolChannelLayer:
    return BlockingPoolChannelLayer(
        hosts=[settings.REDIS_URL],
        prefix=f"{settings.CACHES['default']['KEY_PREFIX']}:pooltest",
        max_connections=max_connections,
    )


def test_a_burst_larger_than_the_pool_waits_for_connections() -> None:
    async def scenario() -> list[dict[str, str]]:
        layer = _layer(max_connections=3)
        channels = [await layer.new_channel() for _ in range(60)]
        # 60 joins at once through 3 connections: redis-py's default pool would raise
        # "Too many connections" for most of them.
        await asyncio.gather(*(layer.group_add("burst", channel) for channel in channels))
        await layer.group_send("burst", {"type": "hello", "n": "1"})
        received = await asyncio.gather(
            *(asyncio.wait_for(layer.receive(channel), timeout=10) for channel in channels)
        )
        await layer.flush()
        return received

    received = asyncio.run(scenario())
    assert received == [{"type": "hello", "n": "1"}] * 60


def test_the_socket_timeout_outlasts_the_blocking_pop() -> None:
    layer = _layer(max_connections=5)
    pool = layer.create_pool(0)
    assert isinstance(pool, aioredis.BlockingConnectionPool)
    assert pool.max_connections == 5
    assert pool.connection_kwargs["socket_timeout"] > layer.brpop_timeout
