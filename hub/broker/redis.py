"""RedisConnection: the one Redis client (a pool, or a Cluster client) and key layout the three Redis parts share.

RedisPubSub (redis_pubsub.py), RedisPresence (redis_presence.py) and RedisCoordination (redis_coordination.py) are
opened on one RedisConnection by :func:`hub.broker.open_broker`: one URL parsed, one pool, one check of the
cluster mode, one bound on the operations in flight. Keys of one channel share a hash tag
(``hub:{chat:lobby}:...``), so a script over a channel's keys, and the SPUBLISH it makes, stay in one Cluster slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster

from hub import redis_client
from hub.broker.protocols import BrokerUnavailable
from hub.redis_client import REDIS_ERRORS

T = TypeVar("T")


def milliseconds(seconds: float) -> int:
    """A TTL for Redis: whole milliseconds, at least 1."""
    return max(1, int(seconds * 1000))


class RedisConnection:
    """One client for one URL. Nothing connects until :meth:`open` (or the first command)."""

    def __init__(self, url: str, *, prefix: str = "hub", timeout: float = 3.0, max_connections: int = 64) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = max(timeout, 1.0)
        """How long one operation may take before it counts as an outage."""
        self.client: Any = redis_client.connect(url, max_connections=max_connections, timeout=self.timeout)
        self.sharded = isinstance(self.client, RedisCluster)
        """A Redis Cluster: pub/sub is sharded (SSUBSCRIBE, SPUBLISH) and each key lives on one primary."""
        self._in_flight = asyncio.Semaphore(max_connections)

    def key(self, channel: str, kind: str) -> str:
        """The key of one kind (``stream``, ``presence``, ...) of ``channel``, in the channel's slot."""
        return f"{self.prefix}:{{{channel}}}:{kind}"

    async def call(self, operation: Awaitable[T]) -> T:
        """Await a Redis operation; an outage, or no answer within the timeout, is BrokerUnavailable. The
        bound matters: a connection handles its frames in order, so a stuck call would hold up its pongs."""
        try:
            async with asyncio.timeout(self.timeout):
                # At most max_connections at once: a burst (hundreds of clients leaving) queues here instead of
                # opening a connection each (a cluster client has no blocking pool).
                async with self._in_flight:
                    return await operation
        except REDIS_ERRORS as exc:
            if inspect.iscoroutine(operation):
                operation.close()  # never started if the wait ran out first
            raise BrokerUnavailable(f"redis: {str(exc) or 'no answer in time'}") from exc

    async def open(self) -> None:
        """Refuse a plain URL that names a Cluster node now; when Redis is down, the parts retry later."""
        with contextlib.suppress(*REDIS_ERRORS):
            await redis_client.check_mode(self.client, self.url)

    async def close(self) -> None:
        await self.client.aclose()
