"""The broker conformance suite: every Broker implementation must pass every test here.

Add a backend by adding an entry to BROKER_FACTORIES (name -> async factory building an unstarted broker);
the ``broker`` fixture starts it with a recording ``deliver`` callback and closes it afterwards. Tests use
unique channel names, so a backend shared between tests (a Redis server) needs no flushing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from hub.broker import Broker
from hub.broker.memory import MemoryBroker
from hub.testing import wait_until
from hub.types import HistoryPolicy, PresenceMember, StreamPosition

BrokerFactory = Callable[[pytest.FixtureRequest], Awaitable[Broker]]


async def make_memory_broker(request: pytest.FixtureRequest) -> Broker:
    return MemoryBroker(sweep_interval=0.05)


async def make_redis_broker(request: pytest.FixtureRequest) -> Broker:
    from hub.broker.redis import RedisBroker

    return RedisBroker(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex[:8]}")


async def make_redis_cluster_broker(request: pytest.FixtureRequest) -> Broker:
    from hub.broker.redis import RedisBroker

    return RedisBroker(request.getfixturevalue("redis_cluster_url"), prefix=f"t{uuid.uuid4().hex[:8]}")


BROKER_FACTORIES: dict[str, BrokerFactory] = {
    "memory": make_memory_broker,
    "redis": make_redis_broker,
    "redis-cluster": make_redis_cluster_broker,
}

HISTORY = HistoryPolicy(size=10, ttl=60.0)
DELIVERY_TIMEOUT = 2.0
QUIET_PERIOD = 0.02  # how long to watch for a duplicate delivery after the expected ones arrived


class Deliveries:
    """The ``deliver`` callback given to the broker: records (channel, frame, offset) in arrival order."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, int | None]] = []
        self._arrived = asyncio.Event()

    def __call__(self, channel: str, frame: str, offset: int | None) -> None:
        self.received.append((channel, frame, offset))
        self._arrived.set()

    def on(self, channel: str) -> list[tuple[str, str, int | None]]:
        return [entry for entry in self.received if entry[0] == channel]

    async def exactly(self, channel: str, count: int) -> list[tuple[str, str, int | None]]:
        """Wait for ``count`` deliveries on ``channel`` (a remote broker delivers asynchronously), then check
        that no more arrive."""
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            while len(self.on(channel)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.sleep(QUIET_PERIOD)
        found = self.on(channel)
        assert len(found) == count, found
        return found


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture(params=sorted(BROKER_FACTORIES))
async def broker(
    request: pytest.FixtureRequest, deliveries: Deliveries, stream_resets: list[str]
) -> AsyncIterator[Broker]:
    instance = await BROKER_FACTORIES[request.param](request)
    await instance.start(deliveries, None, stream_resets.append)
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
def stream_resets() -> list[str]:
    """The channels the broker announced a new stream of (``on_stream_reset``)."""
    return []


@pytest.fixture
def channel() -> str:
    return f"test:{uuid.uuid4().hex}"


async def publish_many(broker: Broker, channel: str, count: int, history: HistoryPolicy = HISTORY) -> list[int | None]:
    return [await broker.publish(channel, "test.said", orjson.dumps({"n": n}).decode(), history) for n in range(count)]


# ---- publish ----------------------------------------------------------------------------------------------


async def test_publish_without_history_delivers_once_without_offset(
    broker: Broker, deliveries: Deliveries, channel: str
) -> None:
    await broker.subscribe(channel)
    offset = await broker.publish(channel, "test.said", '{"text":"hi"}', None)
    assert offset is None
    [(delivered_channel, frame, delivered_offset)] = await deliveries.exactly(channel, 1)
    assert delivered_channel == channel
    assert delivered_offset is None
    assert orjson.loads(frame) == {"op": "ev", "ch": channel, "type": "test.said", "data": {"text": "hi"}}


async def test_publish_with_history_delivers_once_with_offset(
    broker: Broker, deliveries: Deliveries, channel: str
) -> None:
    await broker.subscribe(channel)
    offset = await broker.publish(channel, "test.said", '{"text":"hi"}', HISTORY)
    assert offset == 1
    [(_, frame, delivered_offset)] = await deliveries.exactly(channel, 1)
    assert delivered_offset == 1
    assert orjson.loads(frame) == {"op": "ev", "ch": channel, "type": "test.said", "data": {"text": "hi"}, "offset": 1}


async def test_offsets_increase_by_one_per_recoverable_publish(
    broker: Broker, deliveries: Deliveries, channel: str
) -> None:
    await broker.subscribe(channel)
    assert await publish_many(broker, channel, 5) == [1, 2, 3, 4, 5]
    delivered = await deliveries.exactly(channel, 5)
    assert [offset for _, _, offset in delivered] == [1, 2, 3, 4, 5]
    assert [orjson.loads(frame)["data"]["n"] for _, frame, _ in delivered] == [0, 1, 2, 3, 4]


async def test_ephemeral_publishes_do_not_take_offsets(broker: Broker, deliveries: Deliveries, channel: str) -> None:
    await broker.subscribe(channel)
    assert await broker.publish(channel, "test.said", "1", HISTORY) == 1
    assert await broker.publish(channel, "test.typing", "2", None) is None
    assert await broker.publish(channel, "test.said", "3", HISTORY) == 2
    delivered = await deliveries.exactly(channel, 3)
    assert [offset for _, _, offset in delivered] == [1, None, 2]
    position = await broker.position(channel, HISTORY)
    recovery = await broker.recover(channel, StreamPosition(position.epoch, 0), HISTORY)
    assert [orjson.loads(frame)["data"] for frame in recovery.frames] == [1, 3]


async def test_channels_have_separate_offsets(broker: Broker, channel: str) -> None:
    other = channel + "-other"
    await broker.subscribe(channel)
    await broker.subscribe(other)
    assert await publish_many(broker, channel, 3) == [1, 2, 3]
    assert await publish_many(broker, other, 2) == [1, 2]
    assert (await broker.position(channel, HISTORY)).offset == 3
    assert (await broker.position(other, HISTORY)).offset == 2
    assert (await broker.position(channel, HISTORY)).epoch != (await broker.position(other, HISTORY)).epoch


async def test_unsubscribe_is_accepted(broker: Broker, channel: str) -> None:
    await broker.subscribe(channel)
    await broker.unsubscribe(channel)
    await broker.unsubscribe(channel + "-never-subscribed")


# ---- position and recovery --------------------------------------------------------------------------------


async def test_position_of_a_new_stream(broker: Broker, channel: str) -> None:
    position = await broker.position(channel, HISTORY)
    assert position.offset == 0
    assert position.epoch
    assert await broker.position(channel, HISTORY) == position  # stable while nothing is published


async def test_position_follows_publishes(broker: Broker, channel: str) -> None:
    before = await broker.position(channel, HISTORY)
    await publish_many(broker, channel, 3)
    assert await broker.position(channel, HISTORY) == StreamPosition(before.epoch, 3)


async def test_recover_returns_exactly_the_missed_frames_in_order(
    broker: Broker, deliveries: Deliveries, channel: str
) -> None:
    await broker.subscribe(channel)
    await publish_many(broker, channel, 2)
    seen = await broker.position(channel, HISTORY)
    await publish_many(broker, channel, 3)
    delivered = await deliveries.exactly(channel, 5)
    recovery = await broker.recover(channel, seen, HISTORY)
    assert recovery.recovered is True
    assert recovery.position == StreamPosition(seen.epoch, 5)
    assert list(recovery.frames) == [frame for _, frame, _ in delivered[2:]]
    assert [orjson.loads(frame)["offset"] for frame in recovery.frames] == [3, 4, 5]


async def test_recover_when_up_to_date(broker: Broker, channel: str) -> None:
    await publish_many(broker, channel, 3)
    position = await broker.position(channel, HISTORY)
    recovery = await broker.recover(channel, position, HISTORY)
    assert recovery.recovered is True
    assert recovery.frames == ()
    assert recovery.position == position


async def test_recover_on_an_empty_stream(broker: Broker, channel: str) -> None:
    position = await broker.position(channel, HISTORY)
    recovery = await broker.recover(channel, position, HISTORY)
    assert (recovery.recovered, recovery.frames, recovery.position) == (True, (), position)


async def test_recover_from_another_epoch_fails(broker: Broker, channel: str) -> None:
    await publish_many(broker, channel, 3)
    recovery = await broker.recover(channel, StreamPosition("not-the-epoch", 1), HISTORY)
    assert recovery.recovered is False
    assert recovery.frames == ()
    assert recovery.position == await broker.position(channel, HISTORY)


async def test_recover_from_an_offset_ahead_of_the_stream_fails(broker: Broker, channel: str) -> None:
    await publish_many(broker, channel, 3)
    position = await broker.position(channel, HISTORY)
    recovery = await broker.recover(channel, StreamPosition(position.epoch, 4), HISTORY)
    assert recovery.recovered is False
    assert recovery.frames == ()
    assert recovery.position == position


async def test_recover_outside_the_history_window_fails_without_a_partial_list(broker: Broker, channel: str) -> None:
    small = HistoryPolicy(size=3, ttl=60.0)
    await publish_many(broker, channel, 6, small)  # the window now holds offsets 4, 5, 6
    epoch = (await broker.position(channel, small)).epoch
    for missed_from in (0, 1, 2):
        recovery = await broker.recover(channel, StreamPosition(epoch, missed_from), small)
        assert recovery.recovered is False, missed_from
        assert recovery.frames == (), missed_from
        assert recovery.position == StreamPosition(epoch, 6)


async def test_recover_at_the_edge_of_the_history_window(broker: Broker, channel: str) -> None:
    small = HistoryPolicy(size=3, ttl=60.0)
    await publish_many(broker, channel, 6, small)
    epoch = (await broker.position(channel, small)).epoch
    recovery = await broker.recover(channel, StreamPosition(epoch, 3), small)  # missed 4, 5, 6: all kept
    assert recovery.recovered is True
    assert [orjson.loads(frame)["offset"] for frame in recovery.frames] == [4, 5, 6]


async def test_history_expiry_starts_a_new_epoch(broker: Broker, channel: str) -> None:
    short = HistoryPolicy(size=10, ttl=0.05)
    await publish_many(broker, channel, 2, short)
    old = await broker.position(channel, short)
    assert old.offset == 2
    await asyncio.sleep(0.15)
    new = await broker.position(channel, short)
    assert new.epoch != old.epoch
    recovery = await broker.recover(channel, old, short)
    assert recovery.recovered is False
    assert recovery.frames == ()


async def test_publishing_keeps_the_history_alive(broker: Broker, channel: str) -> None:
    history = HistoryPolicy(size=10, ttl=0.3)
    await publish_many(broker, channel, 1, history)
    epoch = (await broker.position(channel, history)).epoch
    for _ in range(4):  # 0.4 s in total, longer than the ttl, but never 0.3 s without a publish
        await asyncio.sleep(0.1)
        await publish_many(broker, channel, 1, history)
    assert await broker.position(channel, history) == StreamPosition(epoch, 5)


# ---- dedup ------------------------------------------------------------------------------------------------


async def test_claim_mid(broker: Broker) -> None:
    key = f"test:{uuid.uuid4().hex}:mid-1"
    assert await broker.claim_mid(key, 0.1) == "claimed"
    assert await broker.claim_mid(key, 0.1) == "pending"  # the first attempt has not finished
    assert await broker.claim_mid(key + "-other", 0.1) == "claimed"
    await asyncio.sleep(0.2)  # the claim of an attempt that never finished (its node died) expires
    assert await broker.claim_mid(key, 0.1) == "claimed"
    await broker.confirm_mid(key, 0.3)  # done: remembered for the dedup window, not the claim's ttl
    await asyncio.sleep(0.15)
    assert await broker.claim_mid(key, 0.1) == "done"
    await asyncio.sleep(0.25)
    assert await broker.claim_mid(key, 0.1) == "claimed"


@pytest.mark.parametrize("recoverable", [True, False])
async def test_a_publish_can_mark_its_mid_done(broker: Broker, channel: str, recoverable: bool) -> None:
    """The first event of a handler with a mid marks it done in the same step (on Redis: the publish script)."""
    key = f"{channel}\x00alice\x00m-{uuid.uuid4().hex}"
    assert await broker.claim_mid(key, 5.0) == "claimed"
    await broker.publish(channel, "test.said", '{"text":"hi"}', HISTORY if recoverable else None, mid=(key, 0.3))
    assert await broker.claim_mid(key, 5.0) == "done"
    await asyncio.sleep(0.4)  # remembered for the window it was given, not the claim's
    assert await broker.claim_mid(key, 5.0) == "claimed"


async def test_release_mid_lets_a_retry_run(broker: Broker) -> None:
    key = f"test:{uuid.uuid4().hex}:mid-1"
    assert await broker.claim_mid(key, 5.0) == "claimed"
    await broker.release_mid(key)
    assert await broker.claim_mid(key, 5.0) == "claimed"


# ---- interest and leases ----------------------------------------------------------------------------------


async def test_interest_follows_subscribe_and_unsubscribe(broker: Broker, channel: str) -> None:
    assert await broker.interest(channel) == 0
    await broker.subscribe(channel)
    assert await broker.interest(channel) == 1
    assert await broker.interest(channel + "-other") == 0
    await broker.unsubscribe(channel)
    assert await broker.interest(channel) == 0


async def test_a_lease_has_one_owner_until_it_expires(broker: Broker) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    assert await broker.lease_acquire(name, "a", 0.3) is True
    assert await broker.lease_acquire(name, "b", 0.3) is False
    assert await broker.lease_acquire(name, "a", 0.3) is True  # the owner renews it
    await asyncio.sleep(0.45)  # not renewed: it ran out
    assert await broker.lease_acquire(name, "b", 10.0) is True
    assert await broker.lease_acquire(name, "a", 10.0) is False


async def test_renewing_a_lease_keeps_it(broker: Broker) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    for _ in range(4):
        assert await broker.lease_acquire(name, "a", 0.25) is True
        await asyncio.sleep(0.1)
    assert await broker.lease_acquire(name, "b", 0.25) is False


async def test_only_the_owner_releases_a_lease(broker: Broker) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    assert await broker.lease_acquire(name, "a", 10.0) is True
    await broker.lease_release(name, "b")  # not b's: nothing happens
    assert await broker.lease_acquire(name, "b", 10.0) is False
    await broker.lease_release(name, "a")
    assert await broker.lease_acquire(name, "b", 10.0) is True
    await broker.lease_release(name, "nobody")
    assert await broker.lease_acquire(name, "a", 10.0) is False


@pytest.mark.parametrize("backend", ["redis", "redis-cluster"])
async def test_interest_counts_nodes_on_a_shared_redis(request: pytest.FixtureRequest, backend: str) -> None:
    from hub.broker.redis import RedisBroker

    url = request.getfixturevalue("redis_url" if backend == "redis" else "redis_cluster_url")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    nodes = [RedisBroker(url, prefix=prefix) for _ in range(3)]
    channel = f"test:{uuid.uuid4().hex}"
    for node in nodes:
        await node.start(Deliveries())
    try:
        await nodes[0].subscribe(channel)
        await nodes[1].subscribe(channel)
        assert [await node.interest(channel) for node in nodes] == [2, 2, 2]
        await nodes[0].unsubscribe(channel)
        assert await nodes[2].interest(channel) == 1
        await nodes[1].close()  # a node that goes away takes its interest with it
        nodes.pop(1)
        assert await nodes[1].interest(channel) == 0
    finally:
        for node in nodes:
            await node.close()


# ---- presence ---------------------------------------------------------------------------------------------


async def test_presence_join_leave_members(broker: Broker, channel: str) -> None:
    alice = PresenceMember(client="c1", user="alice", name="Alice")
    bob = PresenceMember(client="c2", user="bob", name="Bob")
    alice_again = PresenceMember(client="c3", user="alice", name="Alice")
    assert await broker.presence_members(channel) == []
    await broker.presence_join(channel, alice)
    await broker.presence_join(channel, bob)
    await broker.presence_join(channel, alice_again)
    assert sorted(await broker.presence_members(channel), key=lambda m: m.client) == [alice, bob, alice_again]
    await broker.presence_leave(channel, "c1")
    assert sorted(await broker.presence_members(channel), key=lambda m: m.client) == [bob, alice_again]
    await broker.presence_leave(channel, "c2")
    await broker.presence_leave(channel, "c3")
    assert await broker.presence_members(channel) == []


async def test_presence_join_twice_keeps_one_entry(broker: Broker, channel: str) -> None:
    member = PresenceMember(client="c1", user="alice", name="Alice")
    await broker.presence_join(channel, member)
    await broker.presence_join(channel, member)
    assert await broker.presence_members(channel) == [member]


async def test_presence_leave_of_an_absent_client_is_harmless(broker: Broker, channel: str) -> None:
    member = PresenceMember(client="c1", user="alice", name="Alice")
    await broker.presence_leave(channel, "nobody")
    await broker.presence_join(channel, member)
    await broker.presence_leave(channel, "nobody")
    assert await broker.presence_members(channel) == [member]


async def test_presence_is_per_channel(broker: Broker, channel: str) -> None:
    other = channel + "-other"
    member = PresenceMember(client="c1", user="alice", name="Alice")
    await broker.presence_join(channel, member)
    assert await broker.presence_members(other) == []
    await broker.presence_leave(other, "c1")
    assert await broker.presence_members(channel) == [member]


async def test_a_burst_of_concurrent_operations_all_succeed(broker: Broker, channel: str) -> None:
    """Hundreds of clients leaving at once must not exhaust a connection pool."""
    members = [PresenceMember(client=f"c{n}", user=f"u{n}", name=f"n{n}") for n in range(300)]
    await asyncio.gather(*(broker.presence_join(channel, member) for member in members))
    assert len(await broker.presence_members(channel)) == 300
    await asyncio.gather(*(broker.presence_leave(channel, member.client) for member in members))
    assert await broker.presence_members(channel) == []


async def test_a_new_stream_is_announced(broker: Broker, channel: str, stream_resets: list[str]) -> None:
    """A channel whose history started over under a new epoch (here: expired) is passed to on_stream_reset, so
    subscribers forget offsets from the old stream (the sessions' floors)."""
    short = HistoryPolicy(size=10, ttl=0.2)
    resets = stream_resets
    await broker.subscribe(channel)
    await broker.publish(channel, "test.said", "1", short)
    await asyncio.sleep(0.4)
    if hasattr(broker, "sweep"):
        broker.sweep()
    await broker.publish(channel, "test.said", "2", short)
    await wait_until(lambda: channel in resets, timeout=5, what="the new stream's announcement")
