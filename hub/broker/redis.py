"""RedisBroker: fan-out between nodes over Redis pub/sub, history in Streams, presence with TTLs, dedup keys.

Each node holds one subscription per channel that has local subscribers (the Fanout reference-counts them):
SUBSCRIBE on one connection to a single Redis, or SSUBSCRIBE on the owning primary of a Redis Cluster
(hub/broker/redis_pubsub.py). An event is encoded once; the node that publishes it delivers it to its own
subscribers directly, and Redis carries it to the other nodes. Keys and the pub/sub name of one channel share a
hash tag (``hub:{chat:lobby}:...``), so the publish script and the SPUBLISH it makes stay in one Cluster slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, TypeVar, cast

import orjson
from redis.asyncio.cluster import RedisCluster

from hub import redis_client
from hub.broker import BrokerUnavailable, Deliver, MidClaim, MidDone, PresenceExpired, StreamReset
from hub.broker import redis_scripts as scripts
from hub.broker.redis_pubsub import ShardedSubscriber, Subscriber
from hub.broker.redis_sequencer import Sequencers
from hub.protocol import encode_event
from hub.redis_client import REDIS_ERRORS
from hub.types import HistoryPolicy, PresenceMember, Recovery, StreamPosition

log = logging.getLogger("hub.broker.redis")
T = TypeVar("T")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hub",
        presence_ttl: float = 30.0,
        probe_interval: float = 1.0,
        probe_timeout: float = 3.0,
        reconnect_delay: float = 0.5,
        reorder_timeout: float = 0.5,
        max_connections: int = 64,
        node_id: str | None = None,
    ) -> None:
        self.url = url
        self.node_id = node_id or secrets.token_hex(6)
        self._prefix = prefix
        self._presence_ttl = presence_ttl
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._reconnect_delay = reconnect_delay
        self._op_timeout = max(probe_timeout, 1.0)
        self._in_flight = asyncio.Semaphore(max_connections)
        self._redis: Any = redis_client.connect(url, max_connections=max_connections, timeout=max(probe_timeout, 1.0))
        self._sharded = isinstance(self._redis, RedisCluster)
        self._publish_command = "SPUBLISH" if self._sharded else "PUBLISH"
        self._subscriber: Subscriber | ShardedSubscriber = (ShardedSubscriber if self._sharded else Subscriber)(
            self._redis,
            on_message=self._on_message,
            reconnect_delay=reconnect_delay,
            confirm_timeout=probe_timeout,
        )
        self._publish_script = self._redis.register_script(scripts.PUBLISH)
        self._position_script = self._redis.register_script(scripts.POSITION)
        self._join_script = self._redis.register_script(scripts.JOIN)
        self._leave_script = self._redis.register_script(scripts.LEAVE)
        self._lease_acquire_script = self._redis.register_script(scripts.LEASE_ACQUIRE)
        self._lease_release_script = self._redis.register_script(scripts.LEASE_RELEASE)
        self._claim_mid_script = self._redis.register_script(scripts.CLAIM_MID)
        self._deliver: Deliver | None = None
        self._on_presence_expired: PresenceExpired | None = None
        self._on_stream_reset: StreamReset | None = None
        self._channels: set[str] = set()  # channels with local subscribers
        self._sequencers = Sequencers(reorder_timeout, self._read_stream, self._spawn)
        self._probe_channel = f"{prefix}:probe:{self.node_id}"
        self._last_probe = 0.0  # monotonic time our last probe came back through pub/sub
        self._local_presence: dict[str, dict[str, PresenceMember]] = {}
        self._locks = _ChannelLocks()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    # ---- keys ----------------------------------------------------------------------------------------

    def _key(self, channel: str, kind: str) -> str:
        return f"{self._prefix}:{{{channel}}}:{kind}"

    def _pubsub_name(self, channel: str) -> str:
        return self._key(channel, "ch")

    def _channel_of(self, name: str) -> str:
        return name[len(self._prefix) + 2 : -len("}:ch")]

    async def _call(self, operation: Awaitable[T]) -> T:
        """Await a Redis operation; an outage, or no answer within ``probe_timeout``, is BrokerUnavailable. The
        bound matters: a connection handles its frames in order, so a stuck call would hold up its pongs."""
        try:
            async with asyncio.timeout(self._op_timeout):
                # At most max_connections at once: a burst (hundreds of clients leaving) queues here instead of
                # opening a connection each (a cluster client has no blocking pool).
                async with self._in_flight:
                    return await operation
        except REDIS_ERRORS as exc:
            if inspect.iscoroutine(operation):
                operation.close()  # never started if the wait ran out first
            raise BrokerUnavailable(f"redis: {str(exc) or 'no answer in time'}") from exc

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def start(
        self,
        deliver: Deliver,
        on_presence_expired: PresenceExpired | None = None,
        on_stream_reset: StreamReset | None = None,
    ) -> None:
        self._deliver = deliver
        self._on_presence_expired = on_presence_expired
        self._on_stream_reset = on_stream_reset
        self._sequencers.deliver, self._sequencers.on_stream_reset = deliver, on_stream_reset
        with contextlib.suppress(*REDIS_ERRORS):  # when Redis is down, nodes retry; a wrong URL fails now
            await redis_client.check_mode(self._redis, self.url)
        # Connected before the node serves, so its first subscriptions are confirmed like all later ones.
        await self._subscriber.start([self._probe_channel, *(self._pubsub_name(ch) for ch in self._channels)])
        self._tasks = [
            asyncio.create_task(self._probe_forever(), name="hub-redis-probe"),
            asyncio.create_task(self._presence_forever(), name="hub-redis-presence"),
        ]

    async def close(self) -> None:
        self._closing = True  # the loops check it: redis-py can swallow a cancellation mid-command
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=max(self._probe_interval, 1.0) * 2)
            for task in pending:
                log.warning("task %s did not stop", task.get_name())
        self._tasks = []
        with contextlib.suppress(*REDIS_ERRORS):
            for channel, members in self._local_presence.items():
                if members:
                    await self._redis.hdel(self._key(channel, "presence"), *members)
                    await self._redis.zrem(self._key(channel, "presence-exp"), *members)
        await self._subscriber.close(max(self._probe_interval, 1.0) * 2)
        await self._redis.aclose()

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

    async def publish(
        self, channel: str, event_type: str, data: str, history: HistoryPolicy | None, *, mid: MidDone | None = None
    ) -> int | None:
        assert self._deliver is not None, "publish before start"
        if history is None:
            if mid is not None:  # an ephemeral event: no script to make it one step with
                await self.confirm_mid(*mid)
            frame = encode_event(channel, event_type, data, None)
            payload = f"{self.node_id}||{frame}"
            name = self._pubsub_name(channel)
            await self._call(self._send(name, payload))
            self._deliver(channel, frame, None)
            return None
        head, _, tail = encode_event(channel, event_type, data, 0).rpartition('"offset":0')
        head += '"offset":'
        # One publish per channel at a time on this node, so local delivery follows the offsets.
        keys = [self._key(channel, "epoch"), self._key(channel, "seq"), self._key(channel, "stream")]
        if mid is not None:  # marked done by the same script that publishes (the mid key shares the slot)
            keys.append(self._mid_key(mid[0]))
        async with self._locks.hold(channel):
            offset_reply, epoch_reply = await self._call(
                self._publish_script(
                    keys=keys,
                    args=[
                        secrets.token_hex(6),
                        head,
                        tail,
                        history.size,
                        int(history.ttl * 1000),
                        self._pubsub_name(channel),
                        self.node_id,
                        self._publish_command,
                        *([_ms(mid[1])] if mid is not None else []),
                    ],
                )
            )
            offset = int(offset_reply)
            self._sequencers.sequence(channel, f"{head}{offset}{tail}", offset, epoch_reply.decode())
        return offset

    async def subscribe(self, channel: str) -> None:
        """Subscribe this node and wait for Redis to confirm, so no event published after our caller reads the
        stream position can slip past. During an outage it returns at once; the reader resubscribes later."""
        self._channels.add(channel)
        self._sequencers.hold(channel)
        try:
            await self._subscriber.subscribe(self._pubsub_name(channel))
            # Every event after this offset reaches us through pub/sub; deliver from the next one on, in order.
            epoch, seq = await asyncio.wait_for(
                self._redis.mget(self._key(channel, "epoch"), self._key(channel, "seq")), self._op_timeout
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
        if self._sharded:
            node = self._redis.get_node_from_key(name)
            reply = await self._call(self._redis.execute_command("PUBSUB SHARDNUMSUB", name, target_nodes=node))
        else:
            reply = await self._call(self._redis.execute_command("PUBSUB NUMSUB", name))
        return _numsub(reply, name)

    # ---- leases --------------------------------------------------------------------------------------

    async def lease_acquire(self, name: str, owner: str, ttl: float) -> bool:
        key = f"{self._prefix}:lease:{{{name}}}"
        return bool(await self._call(self._lease_acquire_script(keys=[key], args=[owner, max(1, int(ttl * 1000))])))

    async def lease_release(self, name: str, owner: str) -> None:
        await self._call(self._lease_release_script(keys=[f"{self._prefix}:lease:{{{name}}}"], args=[owner]))

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
        if self._sharded:
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
        epoch, offset = await self._call(
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
        entries = await self._call(
            self._redis.xrange(self._key(channel, "stream"), f"{since.offset + 1}-1", f"{position.offset}-1")
        )
        if len(entries) != missed or int(entries[0][0].decode().partition("-")[0]) != since.offset + 1:
            return Recovery(False, position)  # part of it fell out of the window: never a partial list
        return Recovery(True, position, tuple(fields[b"f"].decode() for _id, fields in entries))

    # ---- dedup ---------------------------------------------------------------------------------------

    def _mid_key(self, key: str) -> str:
        """In the slot of the key's channel (the part before its first NUL), beside the channel's stream, so the
        publish script can mark it done (on a Cluster, a script's keys must share a slot)."""
        channel, _, rest = key.partition("\x00")
        return self._key(channel, f"mid:{rest}")

    async def claim_mid(self, key: str, ttl: float) -> MidClaim:
        found = await self._call(self._claim_mid_script(keys=[self._mid_key(key)], args=[_ms(ttl)]))
        if found == 1:
            return "claimed"
        return "done" if found == b"d" else "pending"

    async def confirm_mid(self, key: str, ttl: float) -> None:
        await self._call(self._redis.set(self._mid_key(key), b"d", px=_ms(ttl)))

    async def release_mid(self, key: str) -> None:
        await self._call(self._redis.delete(self._mid_key(key)))

    # ---- presence ------------------------------------------------------------------------------------

    def _expiry(self) -> int:
        return int((time.time() + self._presence_ttl) * 1000)

    async def presence_join(self, channel: str, member: PresenceMember) -> None:
        await self._call(
            self._join_script(
                keys=[self._key(channel, "presence"), self._key(channel, "presence-exp")],
                args=[member.client, orjson.dumps(member.as_dict()), self._expiry(), int(self._presence_ttl * 2000)],
            )
        )
        # Refreshed from now on; only once Redis has it, or a failed join would linger as a ghost member.
        self._local_presence.setdefault(channel, {})[member.client] = member

    async def presence_leave(self, channel: str, client: str) -> None:
        members = self._local_presence.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._local_presence[channel]
        await self._call(
            self._leave_script(keys=[self._key(channel, "presence"), self._key(channel, "presence-exp")], args=[client])
        )

    async def presence_members(self, channel: str) -> list[PresenceMember]:
        now_ms = int(time.time() * 1000)
        clients = await self._call(self._redis.zrangebyscore(self._key(channel, "presence-exp"), now_ms, "+inf"))
        if not clients:
            return []
        values = await self._call(self._redis.hmget(self._key(channel, "presence"), clients))
        return [_member(value) for value in values if value is not None]

    async def _presence_forever(self) -> None:
        """Refresh this node's members before they expire; expire the members of nodes that died."""
        while not self._closing:
            await asyncio.sleep(self._presence_ttl / 3)
            try:
                await self._refresh_presence()
                await self._expire_presence()
            except BrokerUnavailable as exc:
                log.warning("presence upkeep failed: %s", exc)
            except REDIS_ERRORS as exc:
                log.warning("presence upkeep failed: %s", exc)

    async def _refresh_presence(self) -> None:
        expiry = self._expiry()
        ttl_ms = int(self._presence_ttl * 2000)
        for channel, members in list(self._local_presence.items()):
            # A copy: members may leave while this refresh waits for a connection.
            mapping = {client: orjson.dumps(member.as_dict()) for client, member in members.items()}
            if not mapping:
                continue

            def refresh(pipe: Any, channel: str = channel, mapping: dict[str, bytes] = mapping) -> None:
                # The member data too: after Redis lost its data, presence comes back within one refresh.
                pipe.hset(self._key(channel, "presence"), mapping=mapping)
                pipe.zadd(self._key(channel, "presence-exp"), dict.fromkeys(mapping, expiry))
                pipe.pexpire(self._key(channel, "presence"), ttl_ms)
                pipe.pexpire(self._key(channel, "presence-exp"), ttl_ms)

            await self._call(redis_client.pipeline(self._redis, refresh, transaction=False))
            # Whoever left while the refresh was on its way was written back by it: remove them again.
            for client in mapping.keys() - self._local_presence.get(channel, {}).keys():
                await self._call(
                    self._leave_script(
                        keys=[self._key(channel, "presence"), self._key(channel, "presence-exp")], args=[client]
                    )
                )

    async def _expire_presence(self) -> None:
        now_ms = int(time.time() * 1000)
        for channel in list(self._channels):
            expired = await self._redis.zrangebyscore(self._key(channel, "presence-exp"), "-inf", now_ms - 1)
            for client in expired:
                # Whichever node removes the entry first announces the departure, exactly once.
                if await self._redis.zrem(self._key(channel, "presence-exp"), client):
                    value = await self._redis.hget(self._key(channel, "presence"), client)
                    await self._redis.hdel(self._key(channel, "presence"), client)
                    if value is not None and self._on_presence_expired is not None:
                        await self._on_presence_expired(channel, _member(value))


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


def _member(value: Any) -> PresenceMember:
    fields = orjson.loads(value)
    return PresenceMember(client=fields["client"], user=fields["user"], name=fields["name"])
