"""RedisPubSub: fan-out between nodes over Redis pub/sub, each recoverable channel's history in a Stream.

Each node holds one subscription per channel that has local subscribers (the Fanout reference-counts them):
SUBSCRIBE on one connection to a single Redis, or SSUBSCRIBE on the owning primary of a Redis Cluster
(hub/broker/redis_subscriber.py). An event is encoded once; the node that publishes it delivers it to its own
subscribers directly (in offset order: hub/broker/redis_sequencer.py), and Redis carries it to the other nodes.
A recoverable publish is one Lua script (epoch, offset, XADD, PUBLISH, and the mid marked done); with a store
record on the same single Redis, the same script puts the record first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, cast

from hub.broker.protocols import Deliver, HistoryPage, MidDone, StoreRecord, StreamReset
from hub.broker.redis import RedisConnection, milliseconds
from hub.broker.redis_coordination import RedisCoordination
from hub.broker.redis_scripts import POSITION, PUBLISH, PUBLISH_STORED, PUBLISH_UNSEQUENCED_STORED
from hub.broker.redis_sequencer import Sequencers
from hub.broker.redis_subscriber import ShardedSubscriber, Subscriber
from hub.protocol import encode_event
from hub.redis_client import REDIS_ERRORS
from hub.store.redis import RedisStore
from hub.types import HistoryPolicy, Recovery, StreamPosition

log = logging.getLogger("hub.broker.redis")


class RedisPubSub:
    """``publish(mid=...)`` marks the mid done in ``coordination`` (on the same connection): by the publish
    script itself for a recoverable event, the mid key being in the channel's slot."""

    def __init__(
        self,
        connection: RedisConnection,
        coordination: RedisCoordination,
        *,
        node_id: str,
        probe_interval: float = 1.0,
        probe_timeout: float = 3.0,
        reconnect_delay: float = 0.5,
        reorder_timeout: float = 0.5,
    ) -> None:
        self.connection = connection
        self.node_id = node_id
        self._coordination = coordination
        self._redis: Any = connection.client
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._publish_command = "SPUBLISH" if connection.sharded else "PUBLISH"
        self._subscriber: Subscriber | ShardedSubscriber = (ShardedSubscriber if connection.sharded else Subscriber)(
            self._redis,
            on_message=self._on_message,
            reconnect_delay=reconnect_delay,
            confirm_timeout=probe_timeout,
        )
        self._publish_script = self._redis.register_script(PUBLISH)
        self._publish_stored_script = self._redis.register_script(PUBLISH_STORED)
        self._publish_unsequenced_stored_script = self._redis.register_script(PUBLISH_UNSEQUENCED_STORED)
        self._position_script = self._redis.register_script(POSITION)
        self._deliver: Deliver | None = None
        self._channels: set[str] = set()  # channels with local subscribers
        self._sequencers = Sequencers(reorder_timeout, self._read_stream, self._spawn)
        self._probe_channel = f"{connection.prefix}:probe:{node_id}"
        self._last_probe = 0.0  # monotonic time our last probe came back through pub/sub
        self._locks = _ChannelLocks()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    def _key(self, channel: str, kind: str) -> str:
        return self.connection.key(channel, kind)

    def _pubsub_name(self, channel: str) -> str:
        return self.connection.key(channel, "ch")

    def _channel_of(self, name: str) -> str:
        return name[len(self.connection.prefix) + 2 : -len("}:ch")]

    def followed_channels(self) -> list[str]:
        """The channels this node follows (has local subscribers of) now."""
        return list(self._channels)

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def start(self, deliver: Deliver, on_stream_reset: StreamReset | None = None) -> None:
        self._deliver = deliver
        self._sequencers.deliver, self._sequencers.on_stream_reset = deliver, on_stream_reset
        # Connected before the node serves, so its first subscriptions are confirmed like all later ones.
        await self._subscriber.start([self._probe_channel, *(self._pubsub_name(ch) for ch in self._channels)])
        self._tasks = [asyncio.create_task(self._probe_forever(), name="hub-redis-probe")]

    async def close(self) -> None:
        self._closing = True  # the loops check it: redis-py can swallow a cancellation mid-command
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=max(self._probe_interval, 1.0) * 2)
            for task in pending:
                log.warning("task %s did not stop", task.get_name())
        self._tasks = []
        await self._subscriber.close(max(self._probe_interval, 1.0) * 2)

    @property
    def healthy(self) -> bool:
        """True while our probes make the round trip through pub/sub (cross-node delivery is alive) and every
        pub/sub connection answers its PINGs (on a Cluster: one per primary that holds our channels).

        Only a probe that came back on the current pub/sub connection counts: after a reconnect the node stays
        unready until one has, however recent the last probe on the lost connection was."""
        now = time.monotonic()
        connected_at = self._subscriber.connected_at(self._probe_channel)
        return (
            connected_at is not None
            and connected_at <= self._last_probe
            and now - self._last_probe < self._probe_timeout
            and self._subscriber.healthy(self._probe_timeout)
        )

    # ---- fan-out -------------------------------------------------------------------------------------

    def _shares_redis(self, record: StoreRecord) -> bool:
        """Whether ``record``'s store is on this broker's single Redis (the same URL), so that one script can put
        the record and publish. On a Cluster the store's namespace and the channel are in different slots."""
        store = record.store
        return isinstance(store, RedisStore) and not self.connection.sharded and store.url == self.connection.url

    async def publish(
        self,
        channel: str,
        event_type: str,
        data: str,
        history: HistoryPolicy | None,
        *,
        mid: MidDone | None = None,
        record: StoreRecord | None = None,
    ) -> int | None:
        assert self._deliver is not None, "publish before start"
        stored: tuple[list[str], list[str]] | None = None  # the record's keys and (key, value), put by our script
        if record is not None:
            if self._shares_redis(record):
                stored = cast(RedisStore, record.store).record_keys(record.namespace), [record.key, data]
            else:  # another Redis, or a Cluster: the store's own put, durable before the event exists
                await record.store.put(record.namespace, record.key, data.encode())
        if history is None:
            await self._publish_unsequenced(channel, event_type, data, mid, stored)
            return None
        head, _, tail = encode_event(channel, event_type, data, 0).rpartition('"offset":0')
        head += '"offset":'
        keys = [self._key(channel, "epoch"), self._key(channel, "seq"), self._key(channel, "stream")]
        if mid is not None:  # marked done by the same script that publishes (the mid key shares the slot)
            keys.append(self._coordination.mid_key(mid[0]))
        args = [
            secrets.token_hex(6),
            head,
            tail,
            history.size,
            milliseconds(history.ttl),
            self._pubsub_name(channel),
            self.node_id,
            self._publish_command,
            milliseconds(mid[1]) if mid is not None else "",
        ]
        script = self._publish_script
        if stored is not None:
            script = self._publish_stored_script
            keys += stored[0]
            args += stored[1]
        # One publish per channel at a time on this node, so local delivery follows the offsets.
        async with self._locks.hold(channel):
            offset_reply, epoch_reply = await self.connection.call(script(keys=keys, args=args))
            offset = int(offset_reply)
            self._sequencers.sequence(channel, f"{head}{offset}{tail}", offset, epoch_reply.decode())
        return offset

    async def _publish_unsequenced(
        self,
        channel: str,
        event_type: str,
        data: str,
        mid: MidDone | None,
        stored: tuple[list[str], list[str]] | None,
    ) -> None:
        """An event without history: one PUBLISH, or one script when a record is put with it."""
        assert self._deliver is not None, "publish before start"
        frame = encode_event(channel, event_type, data, None)
        payload = f"{self.node_id}||{frame}"
        name = self._pubsub_name(channel)
        if stored is None:
            if mid is not None:  # an ephemeral event: no script to make it one step with
                await self._coordination.confirm_mid(*mid)
            await self.connection.call(self._send(name, payload))
        else:
            keys = [self._coordination.mid_key(mid[0])] if mid is not None else []
            ttl = milliseconds(mid[1]) if mid is not None else ""
            await self.connection.call(
                self._publish_unsequenced_stored_script(
                    keys=[*keys, *stored[0]], args=[self._publish_command, name, payload, ttl, *stored[1]]
                )
            )
        self._deliver(channel, frame, None)

    async def subscribe(self, channel: str) -> None:
        """Subscribe this node and wait for Redis to confirm, so no event published after our caller reads the
        stream position can slip past. During an outage it returns at once; the reader resubscribes later."""
        self._channels.add(channel)
        self._sequencers.hold(channel)
        try:
            await self._subscriber.subscribe(self._pubsub_name(channel))
            # Every event after this offset reaches us through pub/sub; deliver from the next one on, in order.
            epoch, seq = await asyncio.wait_for(
                self._redis.mget(self._key(channel, "epoch"), self._key(channel, "seq")), self.connection.timeout
            )
            if channel in self._channels:
                self._sequencers.release(channel, epoch.decode() if epoch is not None else "", int(seq or 0) + 1)
        except REDIS_ERRORS:
            self._sequencers.unhold(channel)  # the subscriber resubscribes it when Redis is back
        except BaseException:
            self._sequencers.unhold(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._sequencers.drop(channel)
        await self._subscriber.unsubscribe(self._pubsub_name(channel))

    async def interest(self, channel: str) -> int:
        """Redis counts the nodes itself: each holds one (S)SUBSCRIBE per channel with local subscribers, and
        a node that dies loses its subscriptions with its connection."""
        name = self._pubsub_name(channel)
        if self.connection.sharded:
            node = self._redis.get_node_from_key(name)
            command = self._redis.execute_command("PUBSUB SHARDNUMSUB", name, target_nodes=node)
        else:
            command = self._redis.execute_command("PUBSUB NUMSUB", name)
        return _numsub(await self.connection.call(command), name)

    async def _read_stream(self, channel: str, first: int, last: int) -> list[tuple[int, str]]:
        """Events ``first``..``last`` of the channel's stream (what the sequencer fills a gap with)."""
        with contextlib.suppress(*REDIS_ERRORS):
            entries = await self._redis.xrange(self._key(channel, "stream"), f"{first}-1", f"{last}-1")
            return [(int(entry_id.decode().partition("-")[0]), fields[b"f"].decode()) for entry_id, fields in entries]
        return []

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _send(self, name: str, payload: str) -> Awaitable[int]:
        """PUBLISH, or SPUBLISH on a Cluster (routed to the primary that owns the name's slot)."""
        if self.connection.sharded:
            return cast(Awaitable[int], self._redis.spublish(name, payload))
        return cast(Awaitable[int], self._redis.publish(name, payload))

    def _on_message(self, name: str, data: bytes) -> None:
        if name == self._probe_channel:
            self._last_probe = time.monotonic()
            return
        node, _, rest = data.decode().partition("|")
        if node == self.node_id:
            return  # delivered locally when it was published
        offset_text, _, rest = rest.partition("|")
        channel = self._channel_of(name)
        if offset_text:
            epoch, _, frame = rest.partition("|")
            self._sequencers.sequence(channel, frame, int(offset_text), epoch)
        elif self._deliver is not None:
            self._deliver(channel, rest, None)

    async def _probe_forever(self) -> None:
        logged = False
        while not self._closing:
            try:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._send(self._probe_channel, "probe")
                await self._subscriber.ping()
            except Exception:  # task boundary: without probes the node would never be ready again
                # redis-py can raise other errors than its own while a lost connection is torn down (a PING
                # racing the reader: AttributeError on the connection it just dropped); the next probe retries.
                log.warning("a Redis probe failed; probing goes on", exc_info=not logged)
                logged = True
            await asyncio.sleep(self._probe_interval)

    # ---- history -------------------------------------------------------------------------------------

    async def position(self, channel: str, history: HistoryPolicy) -> StreamPosition:
        epoch, offset = await self.connection.call(
            self._position_script(
                keys=[self._key(channel, "epoch"), self._key(channel, "seq"), self._key(channel, "stream")],
                args=[secrets.token_hex(6), int(history.ttl * 1000)],
            )
        )
        return StreamPosition(epoch.decode(), int(offset))

    async def recover(self, channel: str, since: StreamPosition, history: HistoryPolicy) -> Recovery:
        position = await self.position(channel, history)
        if since.epoch != position.epoch or since.offset > position.offset:
            return Recovery(False, position)
        missed = position.offset - since.offset
        if missed == 0:
            return Recovery(True, position)
        if missed > history.size:
            return Recovery(False, position)
        entries = await self.connection.call(
            self._redis.xrange(self._key(channel, "stream"), f"{since.offset + 1}-1", f"{position.offset}-1")
        )
        if len(entries) != missed or int(entries[0][0].decode().partition("-")[0]) != since.offset + 1:
            return Recovery(False, position)  # part of it fell out of the window: never a partial list
        return Recovery(True, position, tuple(fields[b"f"].decode() for _id, fields in entries))

    async def history(self, channel: str, history: HistoryPolicy, *, since: int | None, limit: int) -> HistoryPage:
        """The position, then one XRANGE (after ``since``) or XREVRANGE (the latest) with COUNT ``limit``. The window
        is the last ``history.size`` offsets, as for :meth:`recover` (an approximate MAXLEN may keep a few more)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        position = await self.position(channel, history)
        key = self._key(channel, "stream")
        oldest = max(1, position.offset - history.size + 1)
        if since is None:
            count = min(limit, history.size)
            entries = await self.connection.call(self._redis.xrevrange(key, "+", f"{oldest}-1", count=count))
            entries.reverse()
        else:
            first = max(since + 1, oldest)
            entries = await self.connection.call(self._redis.xrange(key, f"{first}-1", "+", count=limit))
        frames = tuple(
            (int(entry_id.decode().partition("-")[0]), fields[b"f"].decode()) for entry_id, fields in entries
        )
        if since is None:
            return HistoryPage(position, frames)
        first = frames[0][0] if frames else position.offset + 1
        return HistoryPage(position, frames, truncated=since > position.offset or first > since + 1)


class _ChannelLocks:
    """A lock per channel that exists only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, channel: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(channel) or (asyncio.Lock(), 0)
        self._locks[channel] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[channel]
            if users == 1:
                del self._locks[channel]
            else:
                self._locks[channel] = (lock, users - 1)


def _numsub(reply: Any, name: str) -> int:
    """The count for ``name`` in a PUBSUB (SHARD)NUMSUB reply, whichever shape redis-py gives it: a flat
    [name, count] list, a list of pairs, or a dict."""
    if isinstance(reply, dict):
        values = list(reply.items())
    elif reply and isinstance(reply[0], list | tuple):
        values = [tuple(pair) for pair in reply]
    else:
        values = list(zip(reply[::2], reply[1::2], strict=True))
    wanted = name.encode()
    for key, count in values:
        if key in (name, wanted):
            return int(count)
    return 0
