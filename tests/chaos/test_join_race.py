"""Joining a channel on a node whose Redis pub/sub link is slower than its command link (a congested connection,
or a node too busy to read it, as in the reconnect storm of test_reconnect_storm.py).

The `sub` reply's offset is read on the command connection; the events up to it may still be on their way to the
node through pub/sub. Protocol §5.2: "Every later `ev` on this channel has a greater offset". The node used to
deliver those late events after the reply: the client got events its reply already covered (twice, when the
reply recovered them in `missed`). Found by test_failover.py and test_reconnect_storm.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hub.testing import HubClient, wait_until
from tests.chaos.conftest import free_port
from tests.e2e.feed_plugin import make_feed_plugin

pytestmark = pytest.mark.chaos

DELAY = 0.3  # seconds Redis -> node on a slowed connection


class SlowLinkProxy:
    """A TCP proxy to Redis that delays what Redis sends on a connection once the node sent ``marker`` on it
    (``SUBSCRIBE``: the pub/sub connection; ``MGET``: the connection that reads a channel's position when the node
    starts to follow it). The commands reach Redis at once; only their replies and messages come late.

    It runs on an event loop of its own, in a thread, like the hubs of hub.testing (whose start blocks the test's)."""

    def __init__(self, redis_port: int, marker: bytes) -> None:
        self.redis_port = redis_port
        self.marker = marker
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop
        )
        self._server = started.result(timeout=5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        slowed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                if self.marker in data.upper():
                    slowed.set()
                redis_writer.write(data)
                await redis_writer.drain()

        async def downstream() -> None:
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    due, data = await queue.get()
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    client_writer.write(data)
                    await client_writer.drain()

            sender = asyncio.create_task(deliver())
            try:
                while data := await redis_reader.read(65536):
                    queue.put_nowait((time.monotonic() + (DELAY if slowed.is_set() else 0.0), data))
            finally:
                sender.cancel()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            self._tasks.difference_update(tasks)
            for writer in (client_writer, redis_writer):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()


@pytest.fixture
def slow_link(redis_server: Any) -> Iterator[Callable[[bytes], SlowLinkProxy]]:
    proxies: list[SlowLinkProxy] = []

    def start(marker: bytes) -> SlowLinkProxy:
        proxy = SlowLinkProxy(redis_server.port, marker)
        proxy.start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


async def events_after(reader: HubClient, seconds: float) -> list[int]:
    await asyncio.sleep(seconds)
    offsets = []
    while not reader.events.empty():
        frame = reader.events.get_nowait()
        if frame["type"] == "feed.posted":
            offsets.append(frame["offset"])
    return offsets


async def test_no_event_at_or_below_the_reply_offset_follows_the_reply(
    hub_server: Any, hub_client: Any, redis_server: Any, slow_link: Callable[[bytes], SlowLinkProxy]
) -> None:
    slow_pubsub = slow_link(b"SUBSCRIBE")
    prefix = f"join{uuid.uuid4().hex[:8]}"
    common = {"redis_prefix": prefix, "probe_interval": 0.1, "probe_timeout": 2.0, "rate_limit": 10_000.0,
              "rate_burst": 10_000}  # fmt: skip
    feed = {"feed": make_feed_plugin(history_size=1000)}
    slow_node = hub_server(plugins=feed, redis_url=slow_pubsub.url, **common)
    other_node = hub_server(plugins=feed, redis_url=redis_server.url, **common)
    writer = await hub_client(other_node, user="writer")
    await wait_until(lambda: slow_node.app.state.hub.ready, timeout=10, what="the slow node's readiness")
    stop = asyncio.Event()

    async def publish() -> None:
        n = 0
        while not stop.is_set():
            await writer.pub("feed:race", "feed.post", {"n": n})
            n += 1
            await asyncio.sleep(0.01)

    publishing = asyncio.create_task(publish())
    try:
        await asyncio.sleep(0.5)
        problems: dict[str, dict[str, Any]] = {}
        for name in ("first on the node", "joins a followed channel", "resumes with since"):
            reader = await hub_client(slow_node, user=f"reader-{len(problems)}")
            since = None
            if name == "resumes with since":
                position = await reader.sub("feed:race")
                await reader.unsub("feed:race")
                await asyncio.sleep(0.3)
                since = {"epoch": position["epoch"], "offset": position["offset"]}
            reply = await reader.sub("feed:race", since=since)
            offsets = await events_after(reader, 1.0)
            expected = list(range(reply["offset"] + 1, reply["offset"] + 1 + len(offsets)))
            if offsets != expected:
                problems[name] = {"reply": reply["offset"], "then": offsets[:6]}
        assert problems == {}
    finally:
        stop.set()
        await publishing
        # The slow node closes its Redis connections while the proxy still runs: the slow_link fixture is torn
        # down first, and a connection dropped under redis-py leaves an unclosed transport behind (a warning).
        slow_node.stop()


async def test_a_node_that_starts_following_a_channel_delivers_each_event_once(
    hub_server: Any, hub_client: Any, redis_server: Any, slow_link: Callable[[bytes], SlowLinkProxy]
) -> None:
    """The first `sub` of a channel on a node subscribes the node to it on Redis, then reads the channel's last
    offset (MGET) to sequence what pub/sub brings from there. Until that reply is in, events arriving through
    pub/sub are delivered unsequenced, to the joiners whose own reply is already out; once it is in, the sequencer
    starts from the offset Redis had when it ran the MGET, takes the events it already delivered for a gap and
    fills it from the stream: the same events a second time (found by test_reconnect_storm.py: 20 clients of a
    room rejoining the restarted node at once, 1 or 2 duplicates a run). Here the MGET's reply comes 300 ms late.
    """
    prefix = f"join{uuid.uuid4().hex[:8]}"
    common = {"redis_prefix": prefix, "probe_interval": 0.1, "probe_timeout": 2.0, "rate_limit": 10_000.0,
              "rate_burst": 10_000}  # fmt: skip
    feed = {"feed": make_feed_plugin(history_size=1000)}
    slow_node = hub_server(plugins=feed, redis_url=slow_link(b"MGET").url, **common)
    other_node = hub_server(plugins=feed, redis_url=redis_server.url, **common)
    writer = await hub_client(other_node, user="writer")
    readers = [await hub_client(slow_node, user=f"reader-{i}") for i in range(4)]
    await wait_until(lambda: slow_node.app.state.hub.ready, timeout=10, what="the slow node's readiness")
    stop = asyncio.Event()

    async def publish() -> None:
        n = 0
        while not stop.is_set():
            await writer.pub("feed:first", "feed.post", {"n": n})
            n += 1
            await asyncio.sleep(0.01)

    publishing = asyncio.create_task(publish())
    try:
        await asyncio.sleep(0.3)
        replies = await asyncio.gather(*(reader.sub("feed:first") for reader in readers))
        problems: dict[str, dict[str, Any]] = {}
        for index, (reader, reply) in enumerate(zip(readers, replies, strict=True)):
            offsets = await events_after(reader, 1.0 if index == 0 else 0.0)
            expected = list(range(reply["offset"] + 1, reply["offset"] + 1 + len(offsets)))
            if offsets != expected:
                repeated = sorted({offset for offset in offsets if offsets.count(offset) > 1})
                problems[reader.hello["user"]["user"]] = {"reply": reply["offset"], "repeated": repeated[:8]}
        assert problems == {}
    finally:
        stop.set()
        await publishing
        # The slow node closes its Redis connections while the proxy still runs: the slow_link fixture is torn
        # down first, and a connection dropped under redis-py leaves an unclosed transport behind (a warning).
        slow_node.stop()
