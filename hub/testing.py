"""The plugin author's test kit: a real hub on a free port, a real WebSocket client, and pytest fixtures.

What it offers (documented in docs/writing-plugins.md, "Testing it"):

- ``HubServer``: uvicorn and a hub in a background thread, with exactly the plugins given (a module, a plugin
  class or factory, built anew at each start) or the installed ones ``settings.plugins`` names;
- ``HubClient``: a WebSocket client speaking the hub's protocol; ``ReplyError`` is an ``err`` reply it raises;
- fixtures ``hub_server`` (start hubs, stopped after the test) and ``hub_client`` (connect clients);
- ``test_settings`` (a private data dir, ``TEST_SECRET``, fast timers) and ``wait_until`` (poll a condition).

It starts no Redis: process control of Redis and Redis Cluster for the hub's own tests lives in the repo's
tests/rigs/redis.py, not in the installed package.

In a plugin's tests::

    pytest_plugins = ["hub.testing"]

    async def test_echo(hub_server, hub_client):
        server = hub_server(plugins={"echo": Echo})  # the plugin's class: each hub builds its own Echo(hub)
        alice = await hub_client(server, user="alice")
        await alice.sub("echo:room")
        await alice.pub("echo:room", "echo.say", {"text": "hi"})
        assert (await alice.next_event("echo:room"))["data"] == {"text": "hi"}
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin, Subprotocol

from hub.auth import Authenticator
from hub.logging_config import install_log_redaction
from hub.plugin_catalog import PluginCatalog
from hub.protocol import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX
from hub.server import uvicorn_config
from hub.settings import HubSettings

T = TypeVar("T")

TEST_SECRET = "hub-testing-secret-0123456789abcdef"


class HubServer:
    """A real uvicorn + hub on 127.0.0.1 and a free port, run in a background thread.

    ``plugins``: None loads the installed plugins ``settings.plugins`` names (as ``hub serve`` does); a mapping
    name -> module, or class or factory called with the plugin's :class:`hub.Hub` (each start builds a new
    object), runs exactly those: how a plugin under development is tested before it is installed.
    """

    def __init__(self, settings: HubSettings, *, plugins: Mapping[str, object] | None = None) -> None:
        self.settings = settings
        self._plugins = plugins
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def token(self, user: str, *, name: str | None = None, ttl: float = 3600.0, scopes: tuple[str, ...] = ()) -> str:
        return Authenticator(self.settings.resolved_secret()).issue(user, name=name, ttl=ttl, scopes=scopes)

    def _catalog(self) -> PluginCatalog:
        if self._plugins is None:
            return PluginCatalog.from_entry_points(self.settings.plugins)
        return PluginCatalog(self._plugins)

    def start(self) -> HubServer:
        from hub.app import create_app

        app = create_app(self.settings, plugins=self._catalog())  # first: a plugin that fails leaks no socket
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn_config(app, self.settings, port=self.port)
        install_log_redaction()
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        for _ in range(1000):
            if server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("the hub did not start; see the log above")
        return self

    def stop(self) -> None:
        """Stop gracefully, like SIGTERM (sockets get their answers, then 1001); the port is kept for a restart."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def restart(self) -> HubServer:
        self.stop()
        return self.start()

    @property
    def app(self) -> Any:
        assert self._server is not None
        return self._server.config.app

    async def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's event loop (its own thread) and wait for it from the test's loop:
        ``await server.call(server.app.state.hub.listen(channel, callback))``."""
        loop = self.app.state.hub.loop
        assert loop is not None, "the hub has not started"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ReplyError(Exception):
    """The hub answered a request with an ``err`` frame."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('msg')}")
        self.code: str = frame.get("code", "")
        self.msg: str = frame.get("msg", "")
        self.details: list[Any] | None = frame.get("details")
        self.frame = frame


class HubClient:
    """A protocol client over a real WebSocket (the ``websockets`` library).

    Replies are matched to requests by id; events queue up for :meth:`next_event`; server pings are
    answered unless ``auto_pong`` is False.
    """

    def __init__(self, ws: ClientConnection, *, auto_pong: bool = True) -> None:
        self.ws = ws
        self.auto_pong = auto_pong
        self.hello: dict[str, Any] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.unsolicited: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # err without id, pings, pongs
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        token_via: str = "subprotocol",
        origin: str | None = None,
        auto_pong: bool = True,
        **kwargs: Any,
    ) -> HubClient:
        subprotocols = [Subprotocol(SUBPROTOCOL)]
        if token is not None and token_via == "subprotocol":
            subprotocols.append(Subprotocol(TOKEN_SUBPROTOCOL_PREFIX + token))
        elif token is not None and token_via == "query":
            url = f"{url}?token={token}"
        ws = await websockets.connect(
            url,
            subprotocols=subprotocols,
            origin=Origin(origin) if origin is not None else None,
            compression=None,
            max_size=None,
            **kwargs,
        )
        client = cls(ws, auto_pong=auto_pong)
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if first.get("op") != "hello":
            raise AssertionError(f"expected hello, got {first}")
        client.hello = first["data"]
        client._reader = asyncio.create_task(client._read_forever())
        return client

    async def _read_forever(self) -> None:
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                op = frame.get("op")
                if op == "ev":
                    self.events.put_nowait(frame)
                elif op in ("ok", "err", "pong") and frame.get("id") in self._pending:
                    future = self._pending.pop(frame["id"])
                    if not future.done():
                        future.set_result(frame)
                else:
                    if op == "ping" and self.auto_pong:
                        await self.ws.send('{"op":"pong"}')
                    self.unsolicited.put_nowait(frame)
        except websockets.ConnectionClosed:
            return  # the server closed the socket; closed() reports the code
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection closed before the reply"))

    # ---- requests ----------------------------------------------------------------------------------------

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send a frame with a fresh id; return the reply frame (ok, err or pong) as it came."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.ws.send(orjson.dumps({**frame, "id": request_id}).decode())
        return await asyncio.wait_for(future, timeout)

    async def call(self, frame: dict[str, Any], timeout: float = 5.0) -> Any:
        reply = await self.request(frame, timeout)
        if reply["op"] == "err":
            raise ReplyError(reply)
        return reply.get("data")

    async def sub(self, channel: str, since: dict[str, Any] | None = None) -> Any:
        frame: dict[str, Any] = {"op": "sub", "ch": channel}
        if since is not None:
            frame["since"] = since
        return await self.call(frame)

    async def unsub(self, channel: str) -> Any:
        return await self.call({"op": "unsub", "ch": channel})

    async def pub(self, channel: str, message_type: str, data: Any, *, mid: str | None = None) -> Any:
        frame: dict[str, Any] = {"op": "pub", "ch": channel, "type": message_type, "data": data}
        if mid is not None:
            frame["mid"] = mid
        return await self.call(frame)

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    # ---- events ------------------------------------------------------------------------------------------

    async def next_event(
        self, channel: str | None = None, event_type: str | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """The next event matching channel and type; events that do not match are dropped."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.events.get()
                if (channel is None or frame["ch"] == channel) and (event_type is None or frame["type"] == event_type):
                    return frame

    async def no_event(self, channel: str | None = None, event_type: str | None = None, wait: float = 0.3) -> None:
        """Assert that no matching event arrives within ``wait`` seconds."""
        with contextlib.suppress(TimeoutError):
            frame = await self.next_event(channel, event_type, timeout=wait)
            raise AssertionError(f"unexpected event {frame}")

    async def next_unsolicited(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.unsolicited.get(), timeout)

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait for the server to close the socket; return (code, reason)."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code, self.ws.close_reason or ""

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = "condition"
) -> None:
    """Poll ``predicate`` (a function, or one returning an awaitable) until it is truthy; fail after ``timeout``.

    For state no event announces (a metric, a feed moving to another node); wait for events with
    ``HubClient.next_event`` instead."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)


# ---- pytest fixtures -------------------------------------------------------------------------------------


def test_settings(data_dir: Path, **overrides: Any) -> HubSettings:
    """Settings for tests: a private data dir, a fixed secret, and fast timers."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "secret": TEST_SECRET,
        "heartbeat_interval": 0.2,
        "heartbeat_timeout": 2.0,
        "sweep_interval": 0.5,
        "mid_pending_ttl": 1.0,
        "auth_timeout": 2.0,
        "log_level": "warning",
    }
    values.update(overrides)
    return HubSettings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a test despite the name

HubServerFactory = Callable[..., HubServer]


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubServerFactory]:
    """Start real hubs: ``hub_server(plugins=None | {name: module}, **setting_overrides)``."""
    servers: list[HubServer] = []

    def start(plugins: Mapping[str, object] | None = None, **overrides: Any) -> HubServer:
        data_dir = overrides.pop("data_dir", tmp_path / f"hub{len(servers)}")
        server = HubServer(test_settings(data_dir, **overrides), plugins=plugins).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def hub_client() -> AsyncIterator[Callable[..., Any]]:
    """Connect clients: ``await hub_client(server, user="alice")`` (user=None: anonymous)."""
    clients: list[HubClient] = []

    async def connect(server: HubServer, user: str | None = None, **kwargs: Any) -> HubClient:
        token = kwargs.pop("token", None)
        if user is not None:
            token = server.token(user)
        client = await HubClient.connect(server.ws_url, token=token, **kwargs)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
