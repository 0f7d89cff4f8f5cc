"""The broker of a node: its parts (pub/sub with history, presence, coordination, and the cluster's nodes) and
open_broker(url).

The parts are typed by the protocols in hub/broker/protocols.py; a backend implements all of them on one
connection setup: memory (memory_*.py, one process) or Redis (redis_*.py over the one client of redis.py, for
one Redis or a Redis Cluster).
"""

from __future__ import annotations

import secrets
from typing import Protocol
from urllib.parse import urlparse

from hub.broker.protocols import (
    BrokerUnavailable,
    Coordination,
    Deliver,
    HistoryPage,
    MidClaim,
    MidDone,
    NodeRecord,
    Nodes,
    Presence,
    PresenceExpired,
    PubSub,
    StoreRecord,
    StreamReset,
    Survey,
)
from hub.redis_client import SCHEMES as REDIS_SCHEMES

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Coordination",
    "Deliver",
    "HistoryPage",
    "MidClaim",
    "MidDone",
    "NodeRecord",
    "Nodes",
    "Presence",
    "PresenceExpired",
    "PubSub",
    "SharedConnection",
    "StoreRecord",
    "StreamReset",
    "Survey",
    "open_broker",
]


class SharedConnection(Protocol):
    """What the three parts of one backend share (a Redis client and its pool), opened before them and closed
    after them."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class Broker:
    """One node's broker: :attr:`pubsub`, :attr:`presence` and :attr:`coordination`, opened together on one
    backend by :func:`open_broker`, started and closed together. ``pubsub.publish(mid=...)`` marks the mid done in
    this broker's :attr:`coordination`: the two share their backend. :attr:`nodes` (the cluster's registry and
    surveys) is started and closed by its user (hub/control.py), between :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        *,
        node_id: str,
        pubsub: PubSub,
        presence: Presence,
        coordination: Coordination,
        nodes: Nodes,
        connection: SharedConnection | None = None,
    ) -> None:
        self.node_id = node_id
        """This node's id (the Redis pub/sub marks its own events with it; leases name their owners after it)."""
        self.pubsub = pubsub
        self.presence = presence
        self.coordination = coordination
        self.nodes = nodes
        self.connection = connection
        """What the parts share, if anything (None for memory)."""

    @property
    def healthy(self) -> bool:
        """Whether delivery to other nodes works right now (readiness)."""
        return self.pubsub.healthy

    async def start(
        self,
        deliver: Deliver,
        on_presence_expired: PresenceExpired | None = None,
        on_stream_reset: StreamReset | None = None,
    ) -> None:
        """Open the shared connection, then begin delivering (``deliver``, ``on_stream_reset``: see
        :meth:`PubSub.start`) and the presence upkeep (``on_presence_expired``: see :meth:`Presence.start`)."""
        if self.connection is not None:
            await self.connection.open()
        await self.pubsub.start(deliver, on_stream_reset)
        await self.presence.start(on_presence_expired)

    async def close(self) -> None:
        """Remove this node's presence, stop delivering, then close the shared connection."""
        await self.presence.close()
        await self.pubsub.close()
        if self.connection is not None:
            await self.connection.close()


def open_broker(
    url: str,
    *,
    sweep_interval: float = 30.0,
    presence_ttl: float = 30.0,
    probe_interval: float = 1.0,
    probe_timeout: float = 3.0,
    reorder_timeout: float = 0.5,
    prefix: str = "hub",
    node_ttl: float = 15.0,
) -> Broker:
    """Build the broker a URL names: ``memory://`` (one process), ``redis://`` / ``rediss://`` / ``unix://``
    (one Redis, many nodes) or ``redis+cluster://`` / ``rediss+cluster://`` (a Redis Cluster)."""
    scheme = urlparse(url).scheme
    if scheme == "memory":
        from hub.broker.memory_coordination import MemoryCoordination
        from hub.broker.memory_nodes import MemoryNodes
        from hub.broker.memory_presence import MemoryPresence
        from hub.broker.memory_pubsub import MemoryPubSub

        memory_coordination = MemoryCoordination(sweep_interval=sweep_interval)
        node_id = secrets.token_hex(6)
        return Broker(
            node_id=node_id,
            pubsub=MemoryPubSub(memory_coordination, sweep_interval=sweep_interval),
            presence=MemoryPresence(),
            coordination=memory_coordination,
            nodes=MemoryNodes(node_id),
        )
    if scheme in REDIS_SCHEMES:
        from hub.broker.redis import RedisConnection
        from hub.broker.redis_coordination import RedisCoordination
        from hub.broker.redis_nodes import RedisNodes
        from hub.broker.redis_presence import RedisPresence
        from hub.broker.redis_pubsub import RedisPubSub

        node_id = secrets.token_hex(6)
        connection = RedisConnection(url, prefix=prefix, timeout=probe_timeout)  # one client for all three parts
        redis_coordination = RedisCoordination(connection)
        pubsub = RedisPubSub(
            connection,
            redis_coordination,
            node_id=node_id,
            probe_interval=probe_interval,
            probe_timeout=probe_timeout,
            reorder_timeout=reorder_timeout,
        )
        return Broker(
            node_id=node_id,
            pubsub=pubsub,
            presence=RedisPresence(connection, followed=pubsub.followed_channels, ttl=presence_ttl),
            coordination=redis_coordination,
            nodes=RedisNodes(connection, node_id=node_id, ttl=node_ttl),
            connection=connection,
        )
    raise ValueError(
        f"unsupported broker URL {url!r}; expected memory://, redis://host:port/db or redis+cluster://host:port"
    )
