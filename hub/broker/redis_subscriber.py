"""The Redis pub/sub connections of RedisPubSub: one to a single Redis, or one per primary of a Redis Cluster.

``Subscriber`` holds one connection and SUBSCRIBEs every name on it. ``ShardedSubscriber`` places each name
on the primary that owns its hash slot with SSUBSCRIBE (one connection per primary that holds names) and moves
names when the slot map changes: after a failover, a resharding (Redis then sends ``sunsubscribe`` for the
moved slots), or a lost connection. Both reconnect by themselves, resubscribe what they hold, confirm each
subscription before ``subscribe`` returns, and answer ``healthy`` from PINGs sent on every connection.

A connection counts as healthy only once Redis answered on it (a subscription confirmed, a PONG): opening it
is not enough, so a reconnect attempt during an outage never looks like a recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from hub.redis_client import REDIS_ERRORS

log = logging.getLogger("hub.broker.redis")

OnMessage = Callable[[str, bytes], None]
"""(pub/sub name, payload) for each message."""


class _Reader:
    """One pub/sub connection and the names subscribed on it. Reconnects and resubscribes by itself."""

    def __init__(
        self,
        client: Any,
        *,
        label: str,
        sharded: bool,
        on_message: OnMessage,
        reconnect_delay: float,
        confirm_timeout: float,
        on_dropped: Callable[[str], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self._owns_client = owns_client
        self.label = label
        self.names: set[str] = set()
        self.last_seen = time.monotonic()  # the last reply of any kind on this connection
        self.connected_at: float | None = None  # when the current connection was opened and subscribed
        self._sharded = sharded
        self._on_message = on_message
        self._on_dropped = on_dropped
        self._on_lost = on_lost
        self._reconnect_delay = reconnect_delay
        self._confirm_timeout = confirm_timeout
        self._pubsub: Any = None
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._leaving: set[str] = set()  # unsubscribes we asked for, so their confirmation is not a move
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0  # connection attempts failed in a row
        self._connect_lock = asyncio.Lock()

    def alive(self, within: float, now: float) -> bool:
        """Redis answered on the current connection (after it was opened), within the last ``within`` seconds."""
        return self.connected_at is not None and self.last_seen >= self.connected_at and now - self.last_seen < within

    async def start(self) -> None:
        """Connect and subscribe the names held so far, then read in the background. During an outage the
        loop keeps trying."""
        try:
            await self._connect()
        except REDIS_ERRORS as exc:
            log.warning("redis pub/sub %s unavailable (%s); retrying in the background", self.label, exc)
            await self._disconnect()
        self._task = asyncio.create_task(self._run(), name=f"hub-redis-reader {self.label}")

    async def close(self, timeout: float) -> None:
        self._closing = True  # the loop checks it: redis-py can swallow a cancellation mid-command
        if self._task is not None:
            self._task.cancel()
            _done, pending = await asyncio.wait([self._task], timeout=timeout)
            if pending:
                log.warning("redis pub/sub reader %s did not stop", self.label)
        await self._disconnect()
        if self._owns_client:
            await self.client.aclose()

    async def add(self, name: str) -> None:
        """Subscribe ``name`` here and wait for Redis to confirm it. During an outage it raises; the name stays,
        and the reader subscribes it when it reconnects."""
        self.names.add(name)
        self._leaving.discard(name)
        pubsub = self._pubsub
        if pubsub is None:
            raise ConnectionError(f"pub/sub {self.label} is not connected")
        confirmed = self._confirmations.get(name)
        if confirmed is None:
            confirmed = self._confirmations[name] = asyncio.get_running_loop().create_future()
        try:
            await self._ready(pubsub)
            await (pubsub.ssubscribe(name) if self._sharded else pubsub.subscribe(name))
            await asyncio.wait_for(asyncio.shield(confirmed), self._confirm_timeout)
        finally:
            if self._confirmations.get(name) is confirmed and confirmed.done():
                del self._confirmations[name]

    async def remove(self, name: str) -> None:
        self.names.discard(name)
        pubsub = self._pubsub
        if pubsub is not None:
            self._leaving.add(name)
            with contextlib.suppress(*REDIS_ERRORS):
                await self._ready(pubsub)
                await (pubsub.sunsubscribe(name) if self._sharded else pubsub.unsubscribe(name))

    async def ping(self) -> None:
        pubsub = self._pubsub
        if pubsub is not None and pubsub.subscribed:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._ready(pubsub)
                await pubsub.ping()

    async def _ready(self, pubsub: Any) -> None:
        """Give the PubSub its connection once. redis-py makes one in the first command that finds none, so two
        commands racing there (a PING and an SSUBSCRIBE) would open two, and one subscription would land on a
        connection nobody reads."""
        if pubsub.connection is None:
            async with self._connect_lock:
                if pubsub.connection is None:
                    await pubsub.connect()

    async def _connect(self) -> Any:
        pubsub = self.client.pubsub()
        self._pubsub = pubsub  # set first: an add() from now on goes to this connection
        if self.names:
            await self._ready(pubsub)
        if self._sharded:
            for name in list(self.names):  # one SSUBSCRIBE per name: the names of one command must share a slot
                await pubsub.ssubscribe(name)
        elif self.names:
            await pubsub.subscribe(*self.names)
        # Not a reply yet: last_seen moves when Redis confirms these subscriptions or answers a PING.
        self.connected_at = time.monotonic()
        return pubsub

    async def _disconnect(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self.connected_at = None
        self._leaving.clear()
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()

    async def _run(self) -> None:
        while not self._closing:
            try:
                pubsub = self._pubsub or await self._connect()
                log.info("redis pub/sub %s connected (%d names)", self.label, len(self.names))
                self._failures = 0
                while not self._closing:
                    if not pubsub.subscribed:  # nothing to read yet: get_message needs a subscription
                        await asyncio.sleep(0.05)
                        continue
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self._failures += 1
                if not self._closing and self._failures % 60 == 1:  # the first, then one a minute or so
                    log.warning("redis pub/sub %s lost (%s); reconnecting", self.label, exc)
            except Exception:  # a surprise from redis-py must not stop delivery for good (task boundary)
                log.exception("redis pub/sub %s reader failed; reconnecting", self.label)
            finally:
                await self._disconnect()
            if self._closing:
                break
            if self._on_lost is not None:
                self._on_lost()
            await asyncio.sleep(self._reconnect_delay)

    def _handle(self, message: dict[str, Any]) -> None:
        self.last_seen = time.monotonic()
        kind = message["type"]
        if kind in ("message", "smessage"):
            self._on_message(message["channel"].decode(), message["data"])
        elif kind in ("subscribe", "ssubscribe"):
            confirmed = self._confirmations.get(message["channel"].decode())
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif kind == "sunsubscribe":
            name = message["channel"].decode()
            if name in self._leaving:
                self._leaving.discard(name)
            elif name in self.names and self._on_dropped is not None:
                # Redis dropped it: its slot moved to another primary.
                self.names.discard(name)
                self._on_dropped(name)


class Subscriber:
    """Pub/sub on one Redis: every name on one connection (taken from the broker's own client)."""

    def __init__(self, client: Any, *, on_message: OnMessage, reconnect_delay: float, confirm_timeout: float) -> None:
        self._reader = _Reader(
            client,
            label="",
            sharded=False,
            on_message=on_message,
            reconnect_delay=reconnect_delay,
            confirm_timeout=confirm_timeout,
        )

    async def start(self, names: list[str]) -> None:
        self._reader.names.update(names)
        await self._reader.start()

    async def close(self, timeout: float) -> None:
        await self._reader.close(timeout)

    async def subscribe(self, name: str) -> None:
        await self._reader.add(name)

    async def unsubscribe(self, name: str) -> None:
        await self._reader.remove(name)

    async def ping(self) -> None:
        await self._reader.ping()

    def healthy(self, within: float) -> bool:
        return self._reader.alive(within, time.monotonic())

    def connected_at(self, name: str) -> float | None:
        """When the connection that carries ``name`` was opened (None: there is none now)."""
        return self._reader.connected_at if name in self._reader.names else None


class ShardedSubscriber:
    """Pub/sub on a Redis Cluster: each name SSUBSCRIBEd on the primary that owns its slot."""

    def __init__(
        self, cluster: RedisCluster, *, on_message: OnMessage, reconnect_delay: float, confirm_timeout: float
    ) -> None:
        self._cluster = cluster
        self._on_message = on_message
        self._reconnect_delay = reconnect_delay
        self._confirm_timeout = confirm_timeout
        self._wanted: set[str] = set()
        self._readers: dict[str, _Reader] = {}  # primary's "host:port" -> its reader
        self._placement: dict[str, str] = {}  # name -> primary it is subscribed on
        self._lock = asyncio.Lock()  # placement changes one at a time
        self._reroute_needed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, names: list[str]) -> None:
        self._wanted.update(names)
        with contextlib.suppress(*REDIS_ERRORS):
            await self._cluster.initialize()
        await self._reroute()
        self._task = asyncio.create_task(self._reroute_forever(), name="hub-redis-shards")

    async def close(self, timeout: float) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=timeout)
        readers, self._readers = list(self._readers.values()), {}
        await asyncio.gather(*(reader.close(timeout) for reader in readers))

    async def subscribe(self, name: str) -> None:
        self._wanted.add(name)
        async with self._lock:
            await self._place(name)

    async def unsubscribe(self, name: str) -> None:
        self._wanted.discard(name)
        async with self._lock:
            await self._unplace(name)

    async def ping(self) -> None:
        await asyncio.gather(*(reader.ping() for reader in list(self._readers.values())))

    def healthy(self, within: float) -> bool:
        now = time.monotonic()
        return (
            len(self._placement) == len(self._wanted)
            and bool(self._readers)
            and all(reader.alive(within, now) for reader in self._readers.values())
        )

    def connected_at(self, name: str) -> float | None:
        """When the connection that carries ``name`` was opened (None: there is none now)."""
        reader = self._readers.get(self._placement.get(name, ""))
        return reader.connected_at if reader is not None and name in reader.names else None

    # ---- placement ---------------------------------------------------------------------------------------

    def _owner(self, name: str) -> ClusterNode:
        node = self._cluster.get_node_from_key(name)
        if node is None:
            raise ConnectionError(f"no primary of the cluster serves {name!r} now")
        return node

    async def _place(self, name: str) -> None:
        """Subscribe ``name`` on the primary that owns it now (moving it if it was elsewhere)."""
        if name not in self._wanted:
            return
        node = self._owner(name)
        current = self._placement.get(name)
        if current == node.name and name in self._readers[current].names:
            return
        if current is not None:
            await self._unplace(name)
        reader = self._readers.get(node.name)
        if reader is None:
            reader = self._readers[node.name] = self._new_reader(node)
            await reader.start()
        self._placement[name] = node.name
        await reader.add(name)

    async def _unplace(self, name: str) -> None:
        where = self._placement.pop(name, None)
        reader = self._readers.get(where) if where is not None else None
        if reader is None:
            return
        await reader.remove(name)
        if not reader.names:
            del self._readers[reader.label]
            await reader.close(self._confirm_timeout)

    def _new_reader(self, node: ClusterNode) -> _Reader:
        from redis.asyncio import ConnectionPool, Redis

        pool = ConnectionPool(connection_class=node.connection_class, max_connections=2, **node.connection_kwargs)
        return _Reader(
            Redis.from_pool(pool),
            label=node.name,
            sharded=True,
            on_message=self._on_message,
            reconnect_delay=self._reconnect_delay,
            confirm_timeout=self._confirm_timeout,
            on_dropped=self._dropped,
            on_lost=self._reroute_needed.set,
            owns_client=True,
        )

    def _dropped(self, name: str) -> None:
        """Redis unsubscribed ``name`` itself: its slot moved. Re-place it after a fresh look at the slot map."""
        self._placement.pop(name, None)
        self._reroute_needed.set()

    async def _reroute(self) -> None:
        """Read the slot map again and move every name to the primary that owns it now."""
        async with self._lock:
            try:
                await self._cluster.nodes_manager.initialize()
            except REDIS_ERRORS as exc:
                log.warning("redis cluster slot map unavailable (%s)", exc)
                self._reroute_needed.set()
                return
            for name in list(self._wanted):
                try:
                    await self._place(name)
                except REDIS_ERRORS as exc:
                    log.warning("redis cluster: could not subscribe %s (%s)", name, exc)
                    self._reroute_needed.set()
            for name in set(self._placement) - self._wanted:
                await self._unplace(name)

    async def _reroute_forever(self) -> None:
        while not self._closing:
            await self._reroute_needed.wait()
            await asyncio.sleep(self._reconnect_delay)  # let a failover or a burst of moves settle
            self._reroute_needed.clear()
            if not self._closing:
                await self._reroute()
