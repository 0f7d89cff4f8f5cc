"""hub.js's fallback transport in Chromium: with the WebSocket refused (Playwright's route_web_socket closes every
socket before the hub sees it), hub.js switches to server-sent events + POSTs by itself, says so, subscribes and
publishes; once the WebSocket works again, a later reconnect switches back. The demo's header shows the transport."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from playwright.async_api import Page, WebSocketRoute, expect
from pydantic import BaseModel

import hub_realtime_plugins.chat
from hub import Channel, Context, hookimpl
from hub.protocol import CloseCode
from hub.testing import wait_until
from tests.browser.conftest import SDK_HARNESS, channel_log, sdk_page, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST_RECONNECT = {"minDelay": 20, "maxDelay": 100}
SOCKET = re.compile(r"/ws(\?.*)?$")


class Blocker:
    """Refuses the page's WebSockets while ``blocking`` (closed before any byte reaches the hub, as a proxy that
    refuses the upgrade), else lets them through to the hub."""

    def __init__(self) -> None:
        self.blocking = True
        self.refused = 0
        self.passed = 0

    async def install(self, page: Page) -> None:
        await page.route_web_socket(SOCKET, self._route)

    async def _route(self, ws: WebSocketRoute) -> None:
        if self.blocking:
            self.refused += 1
            await ws.close()
        else:
            self.passed += 1
            ws.connect_to_server()


@pytest.fixture
def chat_server(hub_server):
    return hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})


def texts(log):
    return [entry["data"]["text"] for entry in log if entry["kind"] == "event" and entry["type"] == "chat.posted"]


# the SDK harness, with a listener of the transport event before connecting
LISTEN = "  window.transports = [];\n  hub.on('transport', (detail) => window.transports.push(detail));\n"
HARNESS = SDK_HARNESS.replace("  hub.connect();\n", LISTEN + "  hub.connect();\n")
assert HARNESS != SDK_HARNESS


async def blocked_sdk_page(new_page, server, blocker: Blocker, **options):
    """A page of the hub's origin with its WebSockets refused, then hub.js connected as in sdk_page."""
    page = await new_page(f"{server.url}/healthz")
    await blocker.install(page)
    await page.evaluate(HARNESS, options)
    return page


async def test_hub_js_falls_back_to_sse_subscribes_and_publishes(chat_server, new_page, py_client):
    blocker = Blocker()
    page = await blocked_sdk_page(new_page, chat_server, blocker, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.hub.transport") == "sse"
    assert blocker.refused == 2  # fallbackAfter: two refused upgrades, then the stream
    assert await page.evaluate("window.hub.hello.transport") == "sse"
    assert await page.evaluate("window.transports") == [{"transport": "sse", "previous": None}]
    open_detail = await page.evaluate("window.record.details.find((d) => d.state === 'open')")
    assert open_detail["transport"] == "sse"

    room = f"chat:fb{uuid.uuid4().hex[:8]}"
    await page.evaluate("(ch) => window.follow(ch)", room)
    await wait_js(page, "(ch) => window.record.channels[ch].some((e) => e.kind === 'subscribed')", room)
    bob = await py_client(chat_server, user="bob")
    await bob.sub(room)
    sent = await page.evaluate(
        "(ch) => window.settle(window.hub.publish(ch, 'chat.send', {text: 'from the fallback'}))", room
    )
    assert sent["ok"], sent
    assert (await bob.next_event(room, "chat.posted"))["data"]["text"] == "from the fallback"
    await bob.pub(room, "chat.send", {"text": "to the fallback"})
    await wait_js(
        page,
        "(ch) => window.record.channels[ch].some((e) => e.kind === 'event' && e.data.text === 'to the fallback')",
        room,
    )
    assert texts(await channel_log(page, room)) == ["from the fallback", "to the fallback"]
    rtt = await wait_js(page, "() => window.hub.rtt")  # pings and pongs go by POST
    assert rtt > 0
    # nothing of it went over a WebSocket
    assert blocker.passed == 0
    await page.evaluate("window.hub.close()")


async def test_a_lost_stream_reconnects_with_recovery_and_switches_back_once_websocket_works(
    chat_server, new_page, py_client
):
    blocker = Blocker()
    page = await blocked_sdk_page(new_page, chat_server, blocker, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open' && window.hub.transport === 'sse'")
    room = f"chat:fb{uuid.uuid4().hex[:8]}"
    await page.evaluate("(ch) => window.follow(ch)", room)
    await wait_js(page, "(ch) => window.record.channels[ch].some((e) => e.kind === 'subscribed')", room)
    bob = await py_client(chat_server, user="bob")
    await bob.pub(room, "chat.send", {"text": "before"})
    await wait_js(page, "(ch) => window.record.channels[ch].some((e) => e.kind === 'event')", room)

    # still blocked: the hub ends the stream's session; the next attempt tries the WebSocket once, is refused,
    # and goes straight back to the stream, resubscribing with recovery
    hub = chat_server.app.state.hub
    client_id = await page.evaluate("window.hub.hello.client")
    refused_before = blocker.refused
    await chat_server.call(_close(hub, client_id))
    await bob.pub(room, "chat.send", {"text": "while away"})
    await wait_js(page, "(id) => window.hub.state === 'open' && window.hub.hello.client !== id", client_id)
    assert await page.evaluate("window.hub.transport") == "sse"
    assert blocker.refused == refused_before + 1
    await wait_js(
        page,
        "(ch) => window.record.channels[ch].some((e) => e.kind === 'event' && e.data.text === 'while away')",
        room,
    )

    # the WebSocket works again: the next reconnect switches back
    blocker.blocking = False
    client_id = await page.evaluate("window.hub.hello.client")
    await chat_server.call(_close(hub, client_id))
    await wait_js(page, "() => window.hub.state === 'open' && window.hub.transport === 'websocket'")
    assert blocker.passed == 1
    assert await page.evaluate("window.transports.map((t) => t.transport)") == ["sse", "websocket"]
    await bob.pub(room, "chat.send", {"text": "over the socket"})
    await wait_js(
        page,
        "(ch) => window.record.channels[ch].some((e) => e.kind === 'event' && e.data.text === 'over the socket')",
        room,
    )
    assert texts(await channel_log(page, room)) == ["before", "while away", "over the socket"]
    await page.evaluate("window.hub.close()")


async def test_on_the_fallback_a_websocket_probe_moves_the_connection_back(chat_server, new_page, py_client):
    blocker = Blocker()
    page = await blocked_sdk_page(new_page, chat_server, blocker, probeInterval=200, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open' && window.hub.transport === 'sse'")
    room = f"chat:fb{uuid.uuid4().hex[:8]}"
    await page.evaluate("(ch) => window.follow(ch)", room)
    await wait_js(page, "(ch) => window.record.channels[ch].some((e) => e.kind === 'subscribed')", room)
    probes = blocker.refused
    # still blocked: probes are refused beside the stream, and the connection stays where it is
    await wait_until(lambda: blocker.refused >= probes + 2, what="two probes refused")
    assert await page.evaluate("window.hub.transport") == "sse"
    stream_client = await page.evaluate("window.hub.hello.client")

    blocker.blocking = False  # the network lets sockets through now: the next probe works, and the Hub moves
    await wait_js(page, "() => window.hub.transport === 'websocket'", timeout=15_000)
    assert await page.evaluate("window.hub.hello.client") != stream_client
    assert await page.evaluate("window.transports.map((t) => t.transport)") == ["sse", "websocket"]
    states = await page.evaluate("window.record.states")
    assert states[states.index("open") :] == ["open"]  # moved, not lost: no state change since the first open
    bob = await py_client(chat_server, user="bob")
    await bob.pub(room, "chat.send", {"text": "after the move"})
    await wait_js(
        page,
        "(ch) => window.record.channels[ch].some((e) => e.kind === 'event' && e.data.text === 'after the move')",
        room,
    )
    hub = chat_server.app.state.hub
    await wait_until(lambda: stream_client not in hub.sessions, what="the stream's session ended")
    await page.evaluate("window.hub.close()")


async def test_attempts_made_while_the_browser_is_offline_do_not_count_as_refused_upgrades(chat_server, new_page):
    blocker = Blocker()
    blocker.blocking = False
    page = await blocked_sdk_page(new_page, chat_server, blocker, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.hub.transport") == "websocket"
    await page.context.set_offline(True)
    hub = chat_server.app.state.hub
    client_id = await page.evaluate("window.hub.hello.client")
    await chat_server.call(_close(hub, client_id))  # the socket goes; every attempt now fails: no network
    await wait_js(page, "() => window.record.states.filter((s) => s === 'reconnecting').length >= 4")
    await page.context.set_offline(False)
    await wait_js(page, "(id) => window.hub.state === 'open' && window.hub.hello.client !== id", client_id)
    assert await page.evaluate("window.hub.transport") == "websocket"
    assert await page.evaluate("window.transports.map((t) => t.transport)") == ["websocket"]
    await page.evaluate("window.hub.close()")


async def _close(hub, client_id: str) -> None:
    hub.sessions[client_id].close(CloseCode.GOING_AWAY, "Test: the node lets this session go.")


async def test_the_sse_only_option_and_the_demo_header(chat_server, new_page):
    page = await sdk_page(new_page, chat_server.url, transports=["sse"])
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.hub.transport") == "sse"
    await page.evaluate("window.hub.close()")

    demo = await new_page()
    blocker = Blocker()
    await blocker.install(demo)
    await demo.goto(chat_server.url + "/")
    state = demo.locator("#hub-state")
    await expect(state.locator(".state-label")).to_have_text("open · sse")
    await expect(state).to_have_attribute("data-transport", "sse")
    await expect(state).to_have_attribute("title", re.compile("server-sent events"))
    await demo.evaluate("window.hubShell.hub.close()")


class Said(BaseModel):
    text: str


class Board(BaseModel):
    ready: bool = True


class Gated:
    """``gate:*``: a recoverable channel whose snapshot takes ``SNAPSHOT_DELAY`` seconds, so the events published
    meanwhile are held by the session (ok before ev) and leave in the same write to the stream as the reply."""

    SNAPSHOT_DELAY = 1.0

    def __init__(self) -> None:
        self.channel = Channel("gate", recoverable=True, history_size=100)
        self.channel.event("gate.said", Said)
        self.channel.on("gate.say", Said)(self.say)
        self.channel.snapshot(self.snapshot)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    async def say(self, ctx: Context, msg: Said) -> None:
        await ctx.publish("gate.said", msg)

    async def snapshot(self, ctx: Context) -> Board:
        await asyncio.sleep(self.SNAPSHOT_DELAY)
        return Board()


async def test_a_reply_and_the_events_after_it_in_one_chunk_reach_the_app_in_order(hub_server, new_page, py_client):
    # A stream chunk may carry the sub's ok and the channel's first events together. hub.js settles the reply in
    # a promise callback, so the stream hands frames over one per task, as WebSocket messages come: the app must
    # see onSubscribed before those events (found by the reconnect storm under load: live events before the
    # recovered ones).
    server = hub_server(plugins={"gate": Gated()})
    blocker = Blocker()
    page = await blocked_sdk_page(new_page, server, blocker, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.hub.transport") == "sse"
    room = f"gate:r{uuid.uuid4().hex[:8]}"
    speaker = await py_client(server, "speaker")
    await page.evaluate("(ch) => window.follow(ch)", room)
    await asyncio.sleep(Gated.SNAPSHOT_DELAY / 3)  # the sub is in its snapshot: what is published now is held
    for n in range(3):
        await speaker.pub(room, "gate.say", {"text": f"held {n}"})
    events = f"(window.record.channels[{room!r}] || []).filter((e) => e.kind === 'event')"
    await wait_js(page, f"() => {events}.length === 3")
    log = await channel_log(page, room)
    kinds = [entry["kind"] for entry in log]
    assert kinds == ["subscribed", "snapshot", "event", "event", "event"], kinds
    assert [entry["data"]["text"] for entry in log[2:]] == ["held 0", "held 1", "held 2"]
