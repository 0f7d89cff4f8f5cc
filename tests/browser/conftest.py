"""Browser fixtures: one system Chromium per session (Playwright, no browser download), pages that fail the
test on an uncaught page error, screenshots under artifacts/screenshots/, a Python client on the browser
tests' event loop, and a TCP proxy that can make a live connection go silent.

Every test here runs on the session's event loop (``pytestmark = pytest.mark.asyncio(loop_scope="session")``
in each module), because Playwright's objects belong to the loop that started the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from hub.testing import HubClient, HubServer

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WAIT_MS = 10_000  # how long a condition may take before the test fails (conditions, never fixed sleeps)

# Loaded into a blank page: connects with hub.js and records everything it reports, for the tests to read.
SDK_HARNESS = """
async (options) => {
  const { Hub, HubError } = await import("/hub.js");
  const record = { states: [], details: [], channels: {}, errors: [], rtts: [] };
  const hub = new Hub(options);
  for (const state of ["connecting", "open", "reconnecting", "closed"]) {
    hub.on(state, (detail) => { record.states.push(state); record.details.push(detail); });
  }
  hub.on("rtt", (ms) => record.rtts.push(ms));
  hub.on("error", (error) => record.errors.push({ code: error.code, message: error.message }));
  hub.connect();
  window.hub = hub;
  window.record = record;
  window.sdk = { Hub, HubError };
  // follow(channel): subscribe and log every handler call under record.channels[channel]
  window.follow = (channel) => {
    const log = (record.channels[channel] = []);
    const stop = hub.subscribe(channel, {
      onSubscribed: (info) => log.push({ kind: "subscribed", info }),
      onSnapshot: (snapshot, info) => log.push({ kind: "snapshot", snapshot, reset: info.reset }),
      onEvent: (frame) => log.push({ kind: "event", type: frame.type, data: frame.data, offset: frame.offset }),
      onPresence: (members, change) => log.push({ kind: "presence", members, change: change.type }),
      onError: (error) => log.push({ kind: "error", code: error.code, message: error.message }),
    });
    window.unfollow = window.unfollow || {};
    window.unfollow[channel] = stop;
  };
  // settle(promise): what a publish ended with, as plain data
  window.settle = (promise) => promise.then(
    (data) => ({ ok: true, data }),
    (error) => ({ ok: false, name: error.name, code: error.code, message: error.message,
                  details: error.details ?? null, isError: error instanceof Error,
                  isHubError: error instanceof HubError }),
  );
}
"""


def chromium_executable() -> str:
    """``HUB_CHROMIUM`` or Debian's /usr/bin/chromium; missing is a failure, not a skip."""
    executable = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"the browser tests need Chromium at {executable} (Debian package chromium, or set HUB_CHROMIUM)")
    return executable


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """The system Chromium, headless, for the whole session (Playwright drives it; nothing is downloaded)."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


PageFactory = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="session")
async def new_page(browser: Browser) -> AsyncIterator[PageFactory]:
    """``await new_page(url)``: a page in a context of its own (its own storage, like another person's
    browser). An uncaught exception or unhandled rejection in any page fails the test."""
    contexts: list[BrowserContext] = []
    page_errors: list[str] = []

    async def open_page(url: str | None = None) -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: page_errors.append(f"{page.url}: {error}"))
        if url is not None:
            await page.goto(url)
        return page

    yield open_page
    for context in contexts:
        with contextlib.suppress(Exception):  # a context may already be gone with its browser
            await context.close()
    assert page_errors == [], "uncaught errors in the page"


async def sdk_page(new_page: PageFactory, base_url: str, **options: Any) -> Page:
    """A page of the hub's origin with hub.js connected (``window.hub``) and recording (``window.record``).

    The page is the hub's own ``/healthz``: a page the hub serves, so its socket passes the Origin check,
    and Chromium's local-network checks allow it (a page Playwright made up would be blocked from 127.0.0.1).
    """
    page = await new_page(f"{base_url}/healthz")
    await page.evaluate(SDK_HARNESS, options)
    return page


async def wait_js(page: Page, expression: str, arg: Any = None, timeout: float = WAIT_MS) -> Any:
    """Wait until a JS expression (a function of ``arg``) is truthy; return its value."""
    handle = await page.wait_for_function(expression, arg=arg, timeout=timeout)
    return await handle.json_value()


async def channel_log(page: Page, channel: str) -> list[dict[str, Any]]:
    return list(await page.evaluate("(ch) => window.record.channels[ch] || []", channel))


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png (the directory is gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def py_client() -> AsyncIterator[Callable[..., Awaitable[HubClient]]]:
    """``await py_client(server, user="alice")``: hub.testing's HubClient, on the browser tests' loop."""
    clients: list[HubClient] = []

    async def connect(server: HubServer, user: str | None = None, name: str | None = None) -> HubClient:
        token = server.token(user, name=name) if user is not None else None
        client = await HubClient.connect(server.ws_url, token=token)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


class FreezableProxy:
    """A TCP proxy in front of a hub. ``freeze()`` makes it a black hole: bytes of the connections already
    open are dropped in both directions (the sockets stay open, as with a dead network path), and new
    connections are refused. ``thaw()`` lets new connections through again; frozen ones stay dead."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._connections: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def freeze(self) -> None:
        self.frozen = True
        for connection in self._connections:
            connection["frozen"] = True

    def thaw(self) -> None:
        self.frozen = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        connection: dict[str, Any] = {"frozen": False, "writers": (writer, upstream_writer)}
        self._connections.append(connection)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, connection: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                if connection["frozen"]:
                    continue  # the black hole: read and drop
                sink.write(data)
                await sink.drain()
        if not connection["frozen"]:
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in self._connections:
            for writer in connection["writers"]:
                writer.close()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest_asyncio.fixture(loop_scope="session")
async def proxy_to() -> AsyncIterator[Callable[[HubServer], Awaitable[FreezableProxy]]]:
    """``await proxy_to(server)``: a :class:`FreezableProxy` in front of the server, closed after the test."""
    proxies: list[FreezableProxy] = []

    async def start(server: HubServer) -> FreezableProxy:
        proxy = await FreezableProxy(server.port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()
