"""FeedCoordinator: one per node; runs the feeds of the symbols this node holds the lease of, so each symbol
has one feed in the whole cluster, started when someone subscribes and stopped when nobody anywhere does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from functools import partial

from hub import Channel, Hub, Lease
from hub_realtime_plugins.livedata.book import QuoteBook
from hub_realtime_plugins.livedata.messages import LivedataSnapshot
from hub_realtime_plugins.livedata.settings import LivedataSettings
from hub_realtime_plugins.livedata.source import DataSource
from hub_realtime_plugins.livedata.writer import LatestWriter

log = logging.getLogger("hub_realtime_plugins.livedata")

TICK_EVENT = "livedata.tick"
FLUSH_TIMEOUT = 1.0  # seconds a stopping feed waits for its last snapshot to reach the store


def snapshot_key(symbol: str) -> str:
    return f"snapshot/{symbol}"


class FeedStopped(Exception):
    """The feed must stop: its lease is gone, nobody follows it, or the source ran dry (``retry``: wait
    ``retry_delay`` before starting it again, as after a failure)."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry


@dataclass(slots=True)
class RunningFeed:
    symbol: str
    lease: Lease
    book: QuoteBook
    task: asyncio.Task[None] | None = None
    ready: bool = False  # the book holds the stored session: snapshots may come from memory


class FeedCoordinator:
    """Starts, keeps and stops this node's feeds. Every ``check_interval`` (or at once after :meth:`kick`) it
    looks at each symbol: subscribers here and no feed here → try to take the symbol's lease and run the feed.
    A running feed renews its lease every ttl/3 and stops when the lease is lost or the channel has no
    subscriber on any node."""

    def __init__(self, hub: Hub, channel: Channel, source: DataSource, settings: LivedataSettings) -> None:
        self.hub = hub  # the plugin's Hub: leases, interest, publishing and its own store
        self.channel = channel
        self.source = source
        self.settings = settings
        self.store = hub.store
        self._feeds: dict[str, RunningFeed] = {}
        self._writers: dict[str, LatestWriter] = {}
        self._retry_at: dict[str, float] = {}  # symbol -> monotonic time before which a failed feed waits
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ticks_published = 0
        self.feeds_started = 0
        self.feed_failures = 0

    # ---- queries -----------------------------------------------------------------------------------------

    def channel_of(self, symbol: str) -> str:
        return f"{self.channel.namespace}:{symbol}"

    @property
    def running(self) -> int:
        return len(self._feeds)

    def runs(self, symbol: str) -> bool:
        return symbol in self._feeds

    def local_snapshot(self, symbol: str) -> LivedataSnapshot | None:
        """The snapshot from memory when this node runs the symbol's feed (the store may lag a write)."""
        feed = self._feeds.get(symbol)
        return feed.book.snapshot() if feed is not None and feed.ready else None

    async def stored_snapshot(self, symbol: str) -> LivedataSnapshot | None:
        raw = await self.store.get(snapshot_key(symbol))
        return LivedataSnapshot.model_validate_json(raw) if raw is not None else None

    async def snapshot(self, symbol: str) -> LivedataSnapshot:
        found = self.local_snapshot(symbol) or await self.stored_snapshot(symbol)
        return found or LivedataSnapshot(symbol=symbol, open=None, last=None, history=[])

    # ---- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._coordinate(), name="livedata-coordinator")

    def kick(self) -> None:
        """Check now rather than at the next interval (a subscriber just arrived)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the coordinator and every feed; each feed flushes its snapshot and releases its lease."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _coordinate(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._acquire_wanted()
            except Exception:  # a task boundary: one bad check (the broker is down) must not end the loop
                log.exception("livedata: checking feeds failed; retrying in %.1f s", self.settings.check_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.check_interval)

    def _wanted(self) -> list[str]:
        """Symbols with a subscriber on this node, no feed here, and no failure waiting out its retry delay."""
        now = time.monotonic()
        return [
            symbol
            for symbol in self.source.symbols()
            if symbol not in self._feeds
            and self._retry_at.get(symbol, 0.0) <= now
            and self.hub.local_subscribers(self.channel_of(symbol)) > 0
        ]

    async def _acquire_wanted(self) -> None:
        for symbol in self._wanted():
            lease = self.hub.lease(f"{self.channel.namespace}:feed:{symbol}", self.settings.lease_ttl)
            if not await lease.acquire():
                continue  # another node runs it; its ticks reach our subscribers through the broker
            book = QuoteBook(symbol, self.settings.history_size)
            feed = RunningFeed(symbol, lease, book)
            self._feeds[symbol] = feed
            feed.task = asyncio.create_task(self._run(feed), name=f"livedata-feed-{symbol}")

    # ---- one feed ----------------------------------------------------------------------------------------

    async def _run(self, feed: RunningFeed) -> None:
        symbol = feed.symbol
        self.feeds_started += 1
        log.info("livedata: node %s runs the feed of %s", self.hub.node_id, symbol)
        try:
            stored = await self.stored_snapshot(symbol)
            feed.book = QuoteBook.resume(stored, symbol, self.settings.history_size)
            feed.ready = True
            pump = asyncio.create_task(self._pump(feed), name=f"livedata-pump-{symbol}")
            try:
                await self._keep(feed, pump)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump  # when the pump ended by itself, this raises why (FeedStopped, a source's error)
        except FeedStopped as stopped:
            if stopped.retry:
                self._retry_at[symbol] = time.monotonic() + self.settings.retry_delay
            log.info("livedata: the feed of %s stopped on node %s: %s", symbol, self.hub.node_id, stopped)
        except Exception:  # a task boundary: a failing source must not take the coordinator with it
            self.feed_failures += 1
            self._retry_at[symbol] = time.monotonic() + self.settings.retry_delay
            log.exception("livedata: the feed of %s failed; retrying in %.1f s", symbol, self.settings.retry_delay)
        finally:
            self._feeds.pop(symbol, None)
            writer = self._writers.get(symbol)
            # The next owner resumes from the store: let the last snapshot land before the lease goes.
            if writer is not None and not await writer.flush(FLUSH_TIMEOUT):
                writer.cancel()
                log.warning("livedata: %s's last snapshot was not stored within %.1f s", symbol, FLUSH_TIMEOUT)
            with contextlib.suppress(Exception):  # best effort: an unreleased lease expires after its ttl
                await feed.lease.release()
            self.kick()  # a subscriber may have arrived while this feed was stopping: look again now

    async def _keep(self, feed: RunningFeed, pump: asyncio.Task[None]) -> None:
        """Renew the lease every ttl/3 and stop when nobody anywhere follows the channel; returns when the
        pump ends, raises FeedStopped when the feed must stop."""
        channel = self.channel_of(feed.symbol)
        every = min(self.settings.lease_ttl / 3, self.settings.check_interval)
        while True:
            done, _ = await asyncio.wait({pump}, timeout=every)
            if done:
                return
            try:
                renewed = await feed.lease.acquire()
            except Exception:  # the broker is unreachable: go on while the lease is still ours by our clock
                log.warning("livedata: renewing the lease of %s failed", feed.symbol, exc_info=True)
                renewed = feed.lease.held
            if not renewed:
                raise FeedStopped("lost the lease")
            try:
                interested = await self.hub.interest(channel)
            except Exception:  # the broker is unreachable: nobody can tell, so keep feeding while the lease holds
                log.warning("livedata: counting the nodes that follow %s failed", channel, exc_info=True)
                continue
            if interested == 0:
                raise FeedStopped("no subscribers left")

    async def _pump(self, feed: RunningFeed) -> None:
        symbol, book = feed.symbol, feed.book
        channel = self.channel_of(symbol)
        writer = self._writers.get(symbol)
        if writer is None:
            writer = self._writers[symbol] = LatestWriter(symbol, partial(self.store.put, snapshot_key(symbol)))
        stream = self.source.stream(symbol, book.last)
        try:
            async for tick in stream:
                if not feed.lease.held:  # never publish on a lease that may have gone to another node
                    raise FeedStopped("the lease ran out before it could be renewed")
                quote = book.apply(tick, time.time())
                await self.hub.publish(channel, TICK_EVENT, quote)
                self.ticks_published += 1
                writer.offer(book.snapshot().model_dump_json().encode())
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        raise FeedStopped("the source ended", retry=True)
