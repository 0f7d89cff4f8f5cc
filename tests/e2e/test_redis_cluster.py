"""Hub nodes on a real three-primary Redis Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH) on each channel's
owner, in-order delivery across nodes, a resharded slot followed, a primary lost and back."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

import hub_realtime_plugins.chat
from hub.broker import open_broker
from hub.store import open_store
from hub.testing import HubClient, ReplyError
from tests.e2e.feed_plugin import make_feed_plugin
from tests.e2e.test_redis_nodes import node_settings, ready, wait_until
from tests.rigs.redis import RedisClusterServer

PLUGINS = {"feed": make_feed_plugin(history_size=50), "chat": hub_realtime_plugins.chat.Chat}


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def pubsub_name(prefix: str, channel: str) -> str:
    return f"{prefix}:{{{channel}}}:ch"


def rooms_on_every_primary(cluster: RedisClusterServer, prefix: str, count: int = 6) -> list[str]:
    """Channel names whose slots cover every primary (so the test exercises every shard)."""
    rooms: list[str] = []
    owners: set[int] = set()
    n = 0
    while len(owners) < len(cluster.nodes) or len(rooms) < count:
        room = f"feed:r{n}"
        n += 1
        owner = cluster.owner(pubsub_name(prefix, room))
        if owner not in owners or len(rooms) < count:
            rooms.append(room)
            owners.add(owner)
    return rooms


async def shard_subscribers(cluster: RedisClusterServer, index: int, name: str) -> int:
    """PUBSUB SHARDNUMSUB on one primary: how many connections there SSUBSCRIBEd ``name``."""
    client = aioredis.Redis(port=cluster.nodes[index].port)
    try:
        reply = await client.execute_command("PUBSUB", "SHARDNUMSUB", name)
        return int(reply[1])
    finally:
        await client.aclose()


@pytest.fixture
def cluster_nodes(redis_cluster, hub_server, prefix):  # the cluster first, so it outlives the hubs at teardown
    settings = node_settings(redis_cluster.url, prefix, probe_timeout=1.0)
    return hub_server(plugins=PLUGINS, **settings), hub_server(plugins=PLUGINS, **settings), redis_cluster


async def test_every_message_arrives_once_and_in_order_across_shards(cluster_nodes, hub_client, prefix):
    node_a, node_b, cluster = cluster_nodes
    rooms = rooms_on_every_primary(cluster, prefix)
    subscribers = [await hub_client(node, user=f"s{i}") for i, node in enumerate([node_a, node_b] * 2)]
    for subscriber in subscribers:
        for room in rooms:
            await subscriber.sub(room)
    publisher_a = await hub_client(node_a, user="pa")
    publisher_b = await hub_client(node_b, user="pb")

    async def publish(client: HubClient, source: str) -> None:
        for n in range(10):
            for room in rooms:
                await client.pub(room, "feed.post", {"n": n, "source": source})

    await asyncio.gather(publish(publisher_a, "A"), publish(publisher_b, "B"))

    for subscriber in subscribers:
        received = [await subscriber.next_event(None, "feed.posted") for _ in range(20 * len(rooms))]
        await subscriber.no_event(None, "feed.posted", wait=0.1)
        for room in rooms:
            events = [e for e in received if e["ch"] == room]
            for source in "AB":
                assert [e["data"]["n"] for e in events if e["data"]["source"] == source] == list(range(10))
            assert [e["offset"] for e in events] == list(range(1, 21))


async def test_one_sharded_subscription_per_channel_per_node_on_its_owner(cluster_nodes, hub_client, prefix):
    node_a, node_b, cluster = cluster_nodes
    on_a = [await hub_client(node_a, user=f"a{i}") for i in range(3)]
    on_b = [await hub_client(node_b, user=f"b{i}") for i in range(3)]
    for client in on_a + on_b:
        await client.sub("chat:shared")
    name = pubsub_name(prefix, "chat:shared")
    owner = cluster.owner(name)
    others = [index for index in range(len(cluster.nodes)) if index != owner]

    async def counts() -> tuple[int, list[int]]:
        return await shard_subscribers(cluster, owner, name), [
            await shard_subscribers(cluster, index, name) for index in others
        ]

    async def counts_are(on_owner: int) -> bool:
        return await counts() == (on_owner, [0, 0])

    await wait_until(lambda: counts_are(2))  # one per hub node, on the primary that owns the slot only
    classic = aioredis.Redis(port=cluster.nodes[owner].port)
    try:
        assert await classic.pubsub_numsub(name) == [(name.encode(), 0)]  # no cluster-wide SUBSCRIBE
    finally:
        await classic.aclose()
    for client in on_b:
        await client.unsub("chat:shared")
    await wait_until(lambda: counts_are(1))
    for client in on_a:
        await client.unsub("chat:shared")
    await wait_until(lambda: counts_are(0))


async def test_a_resharded_slot_is_followed(cluster_nodes, hub_client, prefix):
    node_a, node_b, cluster = cluster_nodes
    room = "feed:moving"
    reader_a = await hub_client(node_a, user="ra")
    reader_b = await hub_client(node_b, user="rb")
    first = await reader_a.sub(room)
    await reader_b.sub(room)
    writer = await hub_client(node_a, user="w")
    await writer.pub(room, "feed.post", {"n": 0, "source": "A"})
    for reader in (reader_a, reader_b):
        assert (await reader.next_event(room, "feed.posted"))["offset"] == 1

    name = pubsub_name(prefix, room)
    target = await asyncio.to_thread(cluster.move_slot, name)  # keys and all, as redis-cli --cluster reshard does

    async def moved() -> bool:
        return await shard_subscribers(cluster, target, name) == 2

    await wait_until(moved, timeout=10)
    writer_b = await hub_client(node_b, user="wb")
    for n in range(1, 6):
        await writer.pub(room, "feed.post", {"n": n, "source": "A"})
        await writer_b.pub(room, "feed.post", {"n": n, "source": "B"})
    for reader in (reader_a, reader_b):
        events = [await reader.next_event(room, "feed.posted") for _ in range(10)]
        assert [e["offset"] for e in events] == list(range(2, 12))  # the stream moved with its slot
    # The history moved too: recovery from before the move is exact.
    late = await hub_client(node_b, user="late")
    reply = await late.sub(room, since={"epoch": first["epoch"], "offset": 1})
    assert reply["recovered"] is True
    assert [e["offset"] for e in reply["missed"]] == list(range(2, 12))
    assert await ready(node_a)
    assert await ready(node_b)


async def test_a_lost_primary_turns_readyz_red_and_recovery_is_never_false(cluster_nodes, hub_client, prefix):
    node_a, node_b, cluster = cluster_nodes
    room = "feed:fragile"
    name = pubsub_name(prefix, room)
    owner = cluster.owner(name)
    reader = await hub_client(node_b, user="reader")
    first = await reader.sub(room)
    writer = await hub_client(node_a, user="writer")
    await writer.pub(room, "feed.post", {"n": 0, "source": "A"})
    await reader.next_event(room, "feed.posted")
    await wait_until(lambda: ready(node_a))

    await asyncio.to_thread(cluster.stop_node, owner)
    # Node B holds a subscription on the lost primary: not ready. (A node whose channels all live on other
    # primaries stays ready: one lost shard does not take every node out of the load balancer.)
    await wait_until(lambda: _not(ready(node_b)), timeout=10)
    with pytest.raises(ReplyError) as failure:
        await writer.pub(room, "feed.post", {"n": 1, "source": "A"})
    assert failure.value.code == "unavailable"

    await asyncio.to_thread(cluster.start_node, owner)  # same identity and slots, empty memory
    await wait_until(lambda: ready(node_a), timeout=15)
    await wait_until(lambda: ready(node_b), timeout=15)

    async def delivered() -> bool:
        try:
            await writer.pub(room, "feed.post", {"n": 2, "source": "A"})
            await reader.next_event(room, "feed.posted", timeout=1.0)
        except (ReplyError, TimeoutError, AssertionError):
            return False
        return True

    await wait_until(delivered, timeout=15)
    late = await hub_client(node_a, user="late")
    reply = await late.sub(room, since={"epoch": first["epoch"], "offset": 1})
    assert reply["recovered"] is False  # the stream was lost with the node's memory: a new epoch
    assert reply["epoch"] != first["epoch"]


async def _not(check: object) -> bool:
    return not await check  # type: ignore[misc]


async def test_a_plain_url_naming_a_cluster_node_is_refused_at_start(redis_cluster_url):
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    store = open_store(plain)
    with pytest.raises(RuntimeError, match=r"redis\+cluster://"):
        await store.start()
    await store.close()
    broker = open_broker(plain)
    with pytest.raises(RuntimeError, match=r"redis\+cluster://"):
        await broker.start(lambda channel, frame, offset: None)
    await broker.close()
