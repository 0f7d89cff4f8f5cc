"""Helpers of the Python client's tests (tests/test_client*.py, tests/test_listen.py): a record of the callbacks a
``hub.client.Client`` made, awaited instead of polled, and a TCP proxy that can lose a hub's replies, cut every
connection, refuse new ones, or go silent."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hub_realtime_plugins.chat import Chat

CHAT = {"chat": Chat}


class Calls:
    """``calls.record("event")`` is a callback that appends what it gets to ``calls.log["event"]`` (one argument as
    is, several as a tuple); ``await calls.wait("event", 3)`` returns the list once it holds 3 entries."""

    def __init__(self) -> None:
        self.log: dict[str, list[Any]] = defaultdict(list)
        self._changed = asyncio.Event()

    def record(self, kind: str) -> Callable[..., None]:
        def callback(*args: Any) -> None:
            self.log[kind].append(args[0] if len(args) == 1 else args)
            self._changed.set()

        return callback

    async def wait(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.log[kind]) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.log[kind]

    async def until(self, kind: str, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        """The first entry of ``kind`` for which ``predicate`` holds, waiting for it if needed."""
        async with asyncio.timeout(timeout):
            while True:
                for entry in self.log[kind]:
                    if predicate(entry):
                        return entry
                self._changed.clear()
                await self._changed.wait()


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port``.

    - ``lose_replies()``: bytes from the hub on the connections open now are dropped (requests still reach it);
    - ``freeze()``: bytes are dropped both ways on the connections open now (a dead network path);
    - ``cut()``: every open connection is closed at once (the client sees 1006);
    - ``refuse()`` / ``admit()``: new connections are closed on arrival / let through again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refusing = False
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def lose_replies(self) -> None:
        for link in self._links:
            link["down"] = False

    def freeze(self) -> None:
        for link in self._links:
            link["up"] = link["down"] = False

    def cut(self) -> None:
        links, self._links = self._links, []
        for link in links:
            for writer in link["writers"]:
                writer.transport.abort()

    def refuse(self) -> None:
        self.refusing = True

    def admit(self) -> None:
        self.refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.accepted += 1
        hub_reader, hub_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        link: dict[str, Any] = {"up": True, "down": True, "writers": (writer, hub_writer)}
        self._links.append(link)
        for source, sink, direction in ((reader, hub_writer, "up"), (hub_reader, writer, "down")):
            task = asyncio.create_task(self._pipe(source, sink, link, direction))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: dict[str, Any], way: str) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                if link[way]:
                    sink.write(data)
                    await sink.drain()
        if link[way]:
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
