"""The Channels layer on Redis, with a connection pool that waits instead of failing.

redis-py's asyncio pool refuses a command once `max_connections` (100 by default) are in
use. A web process with hundreds of websockets opening at once (a dashboard wall after a
deploy, or every browser reconnecting after a Redis restart) would then drop joins and
deliveries with "Too many connections". A blocking pool queues them for a free connection
for up to `timeout` seconds instead.

The socket read timeout is also raised above the layer's blocking pop: redis-py 8 reads
with a 5 s timeout by default, the same 5 s that channels_redis blocks in BZPOPMIN, so on a
busy process the empty answer at 5 s could arrive after the read gave up, and the consumer
died with "Timeout reading from ..." (its browser lost the messages until it reconnected).
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aioredis


class BlockingPoolChannelLayer(RedisChannelLayer):
    def __init__(
        self, *args: Any, max_connections: int = 100, pool_timeout: float = 20, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout

    def create_pool(self, index: int) -> aioredis.ConnectionPool:  # type: ignore[type-arg]
        host = dict(self.hosts[index])
        if "address" not in host:  # sentinel or host/port configurations: the default pool
            return super().create_pool(index)  # type: ignore[no-any-return]
        address = host.pop("address")
        host.setdefault("socket_timeout", self.brpop_timeout + 5)
        return aioredis.BlockingConnectionPool.from_url(
            address, max_connections=self.max_connections, timeout=self.pool_timeout, **host
        )
