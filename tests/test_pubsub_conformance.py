"""The PubSub conformance suite: every backend's pub/sub (fan-out with history) passes every test here.

Runs on each backend of tests/broker_backends.py; the ``pubsub`` fixture is a started broker's ``pubsub``, with a
recording ``deliver`` (``deliveries``) and ``on_stream_reset`` (``stream_resets``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from hub.broker import Broker, BrokerUnavailable, PubSub, StoreRecord
from hub.store import Store, StoreUnavailable, open_store
from hub.testing import wait_until
from hub.types import HistoryPolicy, StreamPosition
from tests.broker_backends import (
    BACKENDS,
    HISTORY,
    REDIS_BACKENDS,
    Deliveries,
    backend_url,
    open_test_broker,
    started_broker,
    unique_channel,
)


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
def stream_resets() -> list[str]:
    """The channels the pub/sub announced a new stream of (``on_stream_reset``)."""
    return []


@pytest.fixture(params=BACKENDS)
async def broker(
    request: pytest.FixtureRequest, deliveries: Deliveries, stream_resets: list[str]
) -> AsyncIterator[Broker]:
    async with started_broker(request, request.param, deliveries, stream_resets.append) as started:
        yield started


@pytest.fixture
def pubsub(broker: Broker) -> PubSub:
    return broker.pubsub


@pytest.fixture
def channel() -> str:
    return unique_channel()


async def publish_many(pubsub: PubSub, channel: str, count: int, history: HistoryPolicy = HISTORY) -> list[int | None]:
    return [await pubsub.publish(channel, "test.said", orjson.dumps({"n": n}).decode(), history) for n in range(count)]


# ---- publish ----------------------------------------------------------------------------------------------


async def test_publish_without_history_delivers_once_without_offset(
    pubsub: PubSub, deliveries: Deliveries, channel: str
) -> None:
    await pubsub.subscribe(channel)
    offset = await pubsub.publish(channel, "test.said", '{"text":"hi"}', None)
    assert offset is None
    [(delivered_channel, frame, delivered_offset)] = await deliveries.exactly(channel, 1)
    assert delivered_channel == channel
    assert delivered_offset is None
    assert orjson.loads(frame) == {"op": "ev", "ch": channel, "type": "test.said", "data": {"text": "hi"}}


async def test_publish_with_history_delivers_once_with_offset(
    pubsub: PubSub, deliveries: Deliveries, channel: str
) -> None:
    await pubsub.subscribe(channel)
    offset = await pubsub.publish(channel, "test.said", '{"text":"hi"}', HISTORY)
    assert offset == 1
    [(_, frame, delivered_offset)] = await deliveries.exactly(channel, 1)
    assert delivered_offset == 1
    assert orjson.loads(frame) == {"op": "ev", "ch": channel, "type": "test.said", "data": {"text": "hi"}, "offset": 1}


async def test_offsets_increase_by_one_per_recoverable_publish(
    pubsub: PubSub, deliveries: Deliveries, channel: str
) -> None:
    await pubsub.subscribe(channel)
    assert await publish_many(pubsub, channel, 5) == [1, 2, 3, 4, 5]
    delivered = await deliveries.exactly(channel, 5)
    assert [offset for _, _, offset in delivered] == [1, 2, 3, 4, 5]
    assert [orjson.loads(frame)["data"]["n"] for _, frame, _ in delivered] == [0, 1, 2, 3, 4]


async def test_ephemeral_publishes_do_not_take_offsets(pubsub: PubSub, deliveries: Deliveries, channel: str) -> None:
    await pubsub.subscribe(channel)
    assert await pubsub.publish(channel, "test.said", "1", HISTORY) == 1
    assert await pubsub.publish(channel, "test.typing", "2", None) is None
    assert await pubsub.publish(channel, "test.said", "3", HISTORY) == 2
    delivered = await deliveries.exactly(channel, 3)
    assert [offset for _, _, offset in delivered] == [1, None, 2]
    position = await pubsub.position(channel, HISTORY)
    recovery = await pubsub.recover(channel, StreamPosition(position.epoch, 0), HISTORY)
    assert [orjson.loads(frame)["data"] for frame in recovery.frames] == [1, 3]


async def test_channels_have_separate_offsets(pubsub: PubSub, channel: str) -> None:
    other = channel + "-other"
    await pubsub.subscribe(channel)
    await pubsub.subscribe(other)
    assert await publish_many(pubsub, channel, 3) == [1, 2, 3]
    assert await publish_many(pubsub, other, 2) == [1, 2]
    assert (await pubsub.position(channel, HISTORY)).offset == 3
    assert (await pubsub.position(other, HISTORY)).offset == 2
    assert (await pubsub.position(channel, HISTORY)).epoch != (await pubsub.position(other, HISTORY)).epoch


async def test_unsubscribe_is_accepted(pubsub: PubSub, channel: str) -> None:
    await pubsub.subscribe(channel)
    await pubsub.unsubscribe(channel)
    await pubsub.unsubscribe(channel + "-never-subscribed")


# ---- position and recovery ---------------------------------------------------------------------------------


async def test_position_of_a_new_stream(pubsub: PubSub, channel: str) -> None:
    position = await pubsub.position(channel, HISTORY)
    assert position.offset == 0
    assert position.epoch
    assert await pubsub.position(channel, HISTORY) == position  # stable while nothing is published


async def test_position_follows_publishes(pubsub: PubSub, channel: str) -> None:
    before = await pubsub.position(channel, HISTORY)
    await publish_many(pubsub, channel, 3)
    assert await pubsub.position(channel, HISTORY) == StreamPosition(before.epoch, 3)


async def test_recover_returns_exactly_the_missed_frames_in_order(
    pubsub: PubSub, deliveries: Deliveries, channel: str
) -> None:
    await pubsub.subscribe(channel)
    await publish_many(pubsub, channel, 2)
    seen = await pubsub.position(channel, HISTORY)
    await publish_many(pubsub, channel, 3)
    delivered = await deliveries.exactly(channel, 5)
    recovery = await pubsub.recover(channel, seen, HISTORY)
    assert recovery.recovered is True
    assert recovery.position == StreamPosition(seen.epoch, 5)
    assert list(recovery.frames) == [frame for _, frame, _ in delivered[2:]]
    assert [orjson.loads(frame)["offset"] for frame in recovery.frames] == [3, 4, 5]


async def test_recover_when_up_to_date(pubsub: PubSub, channel: str) -> None:
    await publish_many(pubsub, channel, 3)
    position = await pubsub.position(channel, HISTORY)
    recovery = await pubsub.recover(channel, position, HISTORY)
    assert recovery.recovered is True
    assert recovery.frames == ()
    assert recovery.position == position


async def test_recover_on_an_empty_stream(pubsub: PubSub, channel: str) -> None:
    position = await pubsub.position(channel, HISTORY)
    recovery = await pubsub.recover(channel, position, HISTORY)
    assert (recovery.recovered, recovery.frames, recovery.position) == (True, (), position)


async def test_recover_from_another_epoch_fails(pubsub: PubSub, channel: str) -> None:
    await publish_many(pubsub, channel, 3)
    recovery = await pubsub.recover(channel, StreamPosition("not-the-epoch", 1), HISTORY)
    assert recovery.recovered is False
    assert recovery.frames == ()
    assert recovery.position == await pubsub.position(channel, HISTORY)


async def test_recover_from_an_offset_ahead_of_the_stream_fails(pubsub: PubSub, channel: str) -> None:
    await publish_many(pubsub, channel, 3)
    position = await pubsub.position(channel, HISTORY)
    recovery = await pubsub.recover(channel, StreamPosition(position.epoch, 4), HISTORY)
    assert recovery.recovered is False
    assert recovery.frames == ()
    assert recovery.position == position


async def test_recover_outside_the_history_window_fails_without_a_partial_list(pubsub: PubSub, channel: str) -> None:
    small = HistoryPolicy(size=3, ttl=60.0)
    await publish_many(pubsub, channel, 6, small)  # the window now holds offsets 4, 5, 6
    epoch = (await pubsub.position(channel, small)).epoch
    for missed_from in (0, 1, 2):
        recovery = await pubsub.recover(channel, StreamPosition(epoch, missed_from), small)
        assert recovery.recovered is False, missed_from
        assert recovery.frames == (), missed_from
        assert recovery.position == StreamPosition(epoch, 6)


async def test_recover_at_the_edge_of_the_history_window(pubsub: PubSub, channel: str) -> None:
    small = HistoryPolicy(size=3, ttl=60.0)
    await publish_many(pubsub, channel, 6, small)
    epoch = (await pubsub.position(channel, small)).epoch
    recovery = await pubsub.recover(channel, StreamPosition(epoch, 3), small)  # missed 4, 5, 6: all kept
    assert recovery.recovered is True
    assert [orjson.loads(frame)["offset"] for frame in recovery.frames] == [4, 5, 6]


async def test_history_expiry_starts_a_new_epoch(pubsub: PubSub, channel: str) -> None:
    short = HistoryPolicy(size=10, ttl=0.05)
    await publish_many(pubsub, channel, 2, short)
    old = await pubsub.position(channel, short)
    assert old.offset == 2
    await asyncio.sleep(0.15)
    new = await pubsub.position(channel, short)
    assert new.epoch != old.epoch
    recovery = await pubsub.recover(channel, old, short)
    assert recovery.recovered is False
    assert recovery.frames == ()


async def test_publishing_keeps_the_history_alive(pubsub: PubSub, channel: str) -> None:
    history = HistoryPolicy(size=10, ttl=0.3)
    await publish_many(pubsub, channel, 1, history)
    epoch = (await pubsub.position(channel, history)).epoch
    for _ in range(4):  # 0.4 s in total, longer than the ttl, but never 0.3 s without a publish
        await asyncio.sleep(0.1)
        await publish_many(pubsub, channel, 1, history)
    assert await pubsub.position(channel, history) == StreamPosition(epoch, 5)


async def test_a_new_stream_is_announced(pubsub: PubSub, channel: str, stream_resets: list[str]) -> None:
    """A channel whose history started over under a new epoch (here: expired) is passed to on_stream_reset, so
    subscribers forget offsets from the old stream (the sessions' floors)."""
    short = HistoryPolicy(size=10, ttl=0.2)
    resets = stream_resets
    await pubsub.subscribe(channel)
    await pubsub.publish(channel, "test.said", "1", short)
    await asyncio.sleep(0.4)
    if hasattr(pubsub, "sweep"):
        pubsub.sweep()
    await pubsub.publish(channel, "test.said", "2", short)
    await wait_until(lambda: channel in resets, timeout=5, what="the new stream's announcement")


# ---- publish dedup -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("recoverable", [True, False])
async def test_a_publish_can_mark_its_mid_done(broker: Broker, channel: str, recoverable: bool) -> None:
    """The first event of a handler with a mid marks it done in the broker's coordination, in the same step (on
    Redis: the publish script)."""
    key = f"{channel}\x00alice\x00m-{uuid.uuid4().hex}"
    assert await broker.coordination.claim_mid(key, 5.0) == "claimed"
    history = HISTORY if recoverable else None
    await broker.pubsub.publish(channel, "test.said", '{"text":"hi"}', history, mid=(key, 0.3))
    assert await broker.coordination.claim_mid(key, 5.0) == "done"
    await asyncio.sleep(0.4)  # remembered for the window it was given, not the claim's
    assert await broker.coordination.claim_mid(key, 5.0) == "claimed"


# ---- publish and persist ----------------------------------------------------------------------------------
# publish(record=...) writes the event's data to a store record before the event goes out, or in the same step:
# one script when the store is on the broker's single Redis ("redis" store on the "redis" backend), else the
# store's put and then the publish (SQLite on every backend; the Cluster's store, in another slot than the channel).


# (broker backend, store) pairs: SQLite on every backend, a Redis store on the broker's own Redis (or Cluster); a
# memory broker has no Redis to share, so that pair is not generated.
STORE_PAIRS = [
    (backend, store) for backend in BACKENDS for store in ("sqlite", "redis") if (backend, store) != ("memory", "redis")
]
with_store = pytest.mark.parametrize(("broker", "store"), STORE_PAIRS, indirect=True)


@pytest.fixture
async def store(request: pytest.FixtureRequest, broker: Broker) -> AsyncIterator[Store]:
    """A started store (the ``store`` half of a STORE_PAIRS parameter)."""
    backend = request.node.callspec.params["broker"]
    url = "sqlite:///:memory:" if request.param == "sqlite" else backend_url(request, backend)
    opened = open_store(url)
    await opened.start()
    yield opened
    await opened.close()


@pytest.fixture
def record(store: Store) -> StoreRecord:
    return StoreRecord(store, f"ns{uuid.uuid4().hex[:8]}", f"room/{uuid.uuid4().hex}")


@with_store
async def test_a_record_is_written_with_its_event(
    pubsub: PubSub, deliveries: Deliveries, channel: str, record: StoreRecord
) -> None:
    await pubsub.subscribe(channel)
    data = '{"text":"h\u00e9llo \u2603"}'
    offset = await pubsub.publish(channel, "test.said", data, HISTORY, record=record)
    assert offset == 1
    assert await record.store.get(record.namespace, record.key) == data.encode()
    [(_ch, frame, delivered)] = await deliveries.exactly(channel, 1)
    assert delivered == 1
    assert orjson.loads(frame)["data"] == orjson.loads(data)
    assert (await pubsub.position(channel, HISTORY)).offset == 1


@with_store
async def test_a_record_is_written_with_an_event_without_history(
    pubsub: PubSub, deliveries: Deliveries, channel: str, record: StoreRecord
) -> None:
    await pubsub.subscribe(channel)
    assert await pubsub.publish(channel, "test.said", '{"n":1}', None, record=record) is None
    assert await record.store.get(record.namespace, record.key) == b'{"n":1}'
    [(_ch, _frame, offset)] = await deliveries.exactly(channel, 1)
    assert offset is None


@with_store
async def test_a_record_overwrites_and_each_event_keeps_its_offset(
    pubsub: PubSub, channel: str, record: StoreRecord
) -> None:
    offsets = [await pubsub.publish(channel, "test.said", f'{{"n":{n}}}', HISTORY, record=record) for n in range(3)]
    assert offsets == [1, 2, 3]
    assert await record.store.get(record.namespace, record.key) == b'{"n":2}'
    assert await record.store.scan(record.namespace) == [(record.key, b'{"n":2}')]


@with_store
async def test_whoever_reads_the_position_after_the_event_finds_its_record(
    pubsub: PubSub, channel: str, store: Store
) -> None:
    """The record is written no later than the event gets its offset: a late joiner that reads the channel's
    position, then the store (a snapshot), never misses a record whose event the position covers."""
    namespace = f"ns{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            record = StoreRecord(store, namespace, f"m/{n:06d}")
            await pubsub.publish(channel, "test.said", f'{{"n":{n}}}', HISTORY, record=record)
            n += 1

    task = asyncio.create_task(writer())
    try:
        for _ in range(30):
            position = await pubsub.position(channel, HISTORY)
            stored = {key for key, _value in await store.scan(namespace, "m/")}
            assert {f"m/{n:06d}" for n in range(position.offset)} <= stored
            await asyncio.sleep(0)
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("recoverable", [True, False])
@with_store
async def test_a_failed_write_publishes_nothing(
    request: pytest.FixtureRequest,
    pubsub: PubSub,
    deliveries: Deliveries,
    channel: str,
    record: StoreRecord,
    recoverable: bool,
) -> None:
    """The write comes first: when it fails, no event exists (no offset taken, nothing delivered),
    and the caller sees why (StoreUnavailable, or BrokerUnavailable when one Redis script does both)."""
    if request.node.callspec.params["store"] == "sqlite":
        await record.store.close()  # every put now fails
    else:  # the namespace's value hash is a string: the write fails inside Redis (WRONGTYPE)
        import redis.asyncio as aioredis

        from hub.store.redis import RedisStore

        assert isinstance(record.store, RedisStore)
        client = (
            aioredis.RedisCluster.from_url(record.store.url.replace("+cluster", ""))
            if record.store.sharded
            else aioredis.Redis.from_url(record.store.url)
        )
        try:
            await client.set(record.store.record_keys(record.namespace)[1], "not a hash")
        finally:
            await client.aclose()
    await pubsub.subscribe(channel)
    history = HISTORY if recoverable else None
    with pytest.raises((StoreUnavailable, BrokerUnavailable)):
        await pubsub.publish(channel, "test.said", '{"n":1}', history, record=record)
    await pubsub.publish(channel, "test.said", '{"n":2}', history)
    [(_ch, frame, offset)] = await deliveries.exactly(channel, 1)
    assert orjson.loads(frame)["data"] == {"n": 2}
    assert offset == (1 if recoverable else None)


@pytest.mark.parametrize("recoverable", [True, False])
@with_store
async def test_a_stored_publish_marks_its_mid_done(
    broker: Broker, channel: str, record: StoreRecord, recoverable: bool
) -> None:
    key = f"{channel}\x00alice\x00m-{uuid.uuid4().hex}"
    assert await broker.coordination.claim_mid(key, 5.0) == "claimed"
    history = HISTORY if recoverable else None
    await broker.pubsub.publish(channel, "test.said", '{"n":1}', history, mid=(key, 5.0), record=record)
    assert await broker.coordination.claim_mid(key, 5.0) == "done"
    assert await record.store.get(record.namespace, record.key) == b'{"n":1}'


# ---- interest ----------------------------------------------------------------------------------------------


async def test_interest_follows_subscribe_and_unsubscribe(pubsub: PubSub, channel: str) -> None:
    assert await pubsub.interest(channel) == 0
    await pubsub.subscribe(channel)
    assert await pubsub.interest(channel) == 1
    assert await pubsub.interest(channel + "-other") == 0
    await pubsub.unsubscribe(channel)
    assert await pubsub.interest(channel) == 0


async def interest_is(node: Broker, channel: str, count: int) -> bool:
    return await node.pubsub.interest(channel) == count


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_interest_counts_nodes_on_a_shared_redis(request: pytest.FixtureRequest, backend: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    nodes = [open_test_broker(request, backend, prefix=prefix) for _ in range(3)]
    channel = unique_channel()
    for node in nodes:
        await node.start(Deliveries())
    try:
        await nodes[0].pubsub.subscribe(channel)
        await nodes[1].pubsub.subscribe(channel)
        assert [await node.pubsub.interest(channel) for node in nodes] == [2, 2, 2]
        # An UNSUBSCRIBE is not confirmed before unsubscribe() returns (interest is a hint), and Redis may read
        # the count's connection before the subscriber's: the counts are awaited, not read once.
        await nodes[0].pubsub.unsubscribe(channel)
        await wait_until(lambda: interest_is(nodes[2], channel, 1), what="interest 1 after an unsubscribe")
        await nodes[1].close()  # a node that goes away takes its interest with it
        nodes.pop(1)
        await wait_until(lambda: interest_is(nodes[1], channel, 0), what="interest 0 after a node left")
    finally:
        for node in nodes:
            await node.close()
