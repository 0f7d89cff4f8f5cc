"""The Broker bundle: its node id, and the one connection setup the three Redis parts share.

What each part does is in the conformance suites (tests/test_*_conformance.py).
"""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from hub.broker import open_broker
from hub.broker.redis import RedisConnection
from hub.broker.redis_coordination import RedisCoordination
from hub.broker.redis_presence import RedisPresence
from hub.broker.redis_pubsub import RedisPubSub
from hub.testing import wait_until
from hub.types import HistoryPolicy, PresenceMember
from tests.broker_backends import BACKENDS, REDIS_BACKENDS, Deliveries, open_test_broker


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_broker_has_a_node_id_of_its_own(request: pytest.FixtureRequest, backend: str) -> None:
    first, second = open_test_broker(request, backend), open_test_broker(request, backend)
    try:
        assert isinstance(first.node_id, str)
        assert len(first.node_id) >= 8
        assert first.node_id != second.node_id
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_the_three_parts_of_a_redis_broker_share_one_connection(
    request: pytest.FixtureRequest, backend: str
) -> None:
    broker = open_test_broker(request, backend)
    await broker.close()
    assert isinstance(broker.connection, RedisConnection)
    assert isinstance(broker.pubsub, RedisPubSub)
    assert isinstance(broker.presence, RedisPresence)
    assert isinstance(broker.coordination, RedisCoordination)
    assert broker.pubsub.connection is broker.presence.connection is broker.coordination.connection
    assert broker.pubsub.connection is broker.connection
    assert broker.pubsub.node_id == broker.node_id  # what marks this node's own events on pub/sub


async def test_one_pool_serves_the_three_redis_parts(redis_url: str) -> None:
    """Seen from Redis: after one operation of each part, the broker holds two connections (its pub/sub one
    and one pooled connection that served all three parts in turn), not one pool per part."""
    name = f"t{uuid.uuid4().hex[:8]}"
    broker = open_broker(f"{redis_url}?client_name={name}", prefix=name, probe_interval=60.0)
    observer = aioredis.Redis.from_url(redis_url)

    async def connections() -> int:
        return sum(1 for client in await observer.client_list() if client.get("name") == name)

    await broker.start(Deliveries())
    try:
        await wait_until(lambda: broker.healthy, timeout=5, what="the first probe's round trip")
        channel = f"test:{uuid.uuid4().hex}"
        await broker.pubsub.publish(channel, "test.said", "1", HistoryPolicy(size=10, ttl=60.0))
        await broker.presence.join(channel, PresenceMember(client="c1", user="alice", name="Alice"))
        assert await broker.coordination.claim_mid(f"{channel}\x00alice\x00m1", 5.0) == "claimed"
        assert await broker.coordination.lease_acquire(f"lease-{name}", "a", 5.0)
        assert await connections() == 2
    finally:
        await broker.close()
        await observer.aclose()
