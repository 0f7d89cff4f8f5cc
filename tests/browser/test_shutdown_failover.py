"""Graceful shutdown seen from hub.js in Chromium (issue 18, item 7): two real ``hub serve`` nodes on one Redis behind
a round-robin TCP proxy (a load balancer, as in the chaos rig's failover); the node holding the page's socket gets
SIGTERM while a publish of the page is being handled. The publish resolves with its reply, the socket closes with
1001 and the hub's reason, and the SDK reconnects through the proxy to the other node by itself, resubscribes with
``since`` and recovers what was published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hub.asgi_extensions import SHUTDOWN_REASON
from hub.testing import HubClient
from tests.browser.conftest import PageFactory, channel_log, sdk_page, wait_js
from tests.test_shutdown import Node

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST_RECONNECT = {"minDelay": 50, "maxDelay": 300}


class RoundRobinProxy:
    """A TCP load balancer: each new connection goes to the next backend; one that refuses it is skipped (the
    passive health check of the chaos rig's proxy, tests/node/chaos_client.mjs). Half-closes are passed on, so a
    WebSocket's closing handshake goes through as it would without the proxy. ``hold()`` keeps new connections
    waiting (a slow path to the other node) until ``release()``."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = 0
        self._next = 0
        self._admit = asyncio.Event()
        self._admit.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RoundRobinProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hold(self) -> None:
        self._admit.clear()

    def release(self) -> None:
        self._admit.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writers = [writer]
        try:
            await self._admit.wait()
            order = [self.ports[(self._next + i) % len(self.ports)] for i in range(len(self.ports))]
            self._next = (self._next + 1) % len(self.ports)
            for port in order:
                try:
                    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    continue  # that backend is down: the next one
                writers.append(upstream_writer)
                await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
                return
        finally:
            self._tasks.discard(task)
            for each in writers:
                each.close()
                with contextlib.suppress(Exception):
                    await each.wait_closed()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()  # the FIN of one side, passed on

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest_asyncio.fixture(loop_scope="session")
async def two_nodes(tmp_path: Path, redis_url: str) -> AsyncIterator[list[Node]]:
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": f"sd{uuid.uuid4().hex[:8]}",
        "probe_interval": 0.1,
        "probe_timeout": 1.0,
        "shutdown_timeout": 10.0,
        "close_timeout": 1.0,
    }
    nodes = [Node(tmp_path, name, **settings) for name in ("a", "b")]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        for node in nodes:
            node.kill()


async def connections(node: Node) -> int:
    async with httpx.AsyncClient(timeout=2.0) as http:
        return int((await http.get(f"{node.url}/api/info")).json()["connections"])


async def test_sigterm_answers_the_pages_publish_and_the_sdk_moves_to_the_other_node(
    two_nodes: list[Node], new_page: PageFactory
) -> None:
    proxy = await RoundRobinProxy([node.port for node in two_nodes]).start()
    try:
        page = await sdk_page(new_page, proxy.url, **FAST_RECONNECT)
        await page.evaluate("window.follow('slow:room')")
        await wait_js(page, "() => window.record.channels['slow:room'].some(e => e.kind === 'subscribed')")
        counts = [await connections(node) for node in two_nodes]
        assert sorted(counts) == [0, 1], counts
        doomed, survivor = two_nodes if counts[0] == 1 else two_nodes[::-1]

        await page.evaluate(
            "() => { window.inflight = window.settle("
            "window.hub.publish('slow:room', 'slow.post', {n: 1, hold: 1.0})); }"
        )
        await wait_js(page, "() => window.record.channels['slow:room'].some(e => e.type === 'slow.started')")
        proxy.hold()  # the SDK's next connection waits, so that something is published while it is away
        doomed.send(signal.SIGTERM)
        await doomed.stopped_accepting()

        # The publish being handled is answered before the socket closes with 1001 and the hub's reason.
        assert await page.evaluate("window.inflight") == {"ok": True, "data": {"n": 1}}
        detail = await wait_js(
            page, "() => window.record.details.find(d => d.state === 'reconnecting' && d.code !== undefined)"
        )
        assert (detail["code"], detail["reason"]) == (1001, SHUTDOWN_REASON)
        writer = await HubClient.connect(survivor.ws_url)
        await writer.call({"op": "pub", "ch": "slow:room", "type": "slow.post", "data": {"n": 2}})  # while away
        proxy.release()

        # The SDK reconnects through the proxy, which skips the stopped node, and recovers the missed post.
        await wait_js(
            page, "() => window.record.channels['slow:room'].filter(e => e.kind === 'subscribed').length === 2"
        )
        await wait_js(
            page, "() => window.record.channels['slow:room'].filter(e => e.type === 'slow.posted').length === 2"
        )
        log = await channel_log(page, "slow:room")
        again = [entry["info"] for entry in log if entry["kind"] == "subscribed"][1]
        assert (again["resubscribed"], again["recovered"], again["missed"]) == (True, True, 1)
        assert [entry["data"]["n"] for entry in log if entry.get("type") == "slow.posted"] == [1, 2]
        assert await page.evaluate("window.hub.state") == "open"
        assert await connections(survivor) == 2  # the page's socket and the writer
        assert await doomed.exited() == -signal.SIGTERM
        assert "Traceback" not in doomed.log.read_text()
        await writer.close()
    finally:
        await proxy.close()
