"""hub.js in a real Chromium against a real hub: state events, subscribe/publish, errors, unsubscribe,
reconnect and recovery after a restart, and dead-connection detection by heartbeat."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import expect

import hub_realtime_plugins.chat
from hub import Plugin
from tests.browser.conftest import SDK_HARNESS, channel_log, sdk_page, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST_RECONNECT = {"minDelay": 50, "maxDelay": 300}
CLIENT_DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
# The doc's complete example: the html block whose first line is "<!-- chat-example.html -->".
DOC_EXAMPLE = re.compile(r"^```html\n<!-- chat-example\.html -->\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.fixture
def chat_server(hub_server):
    return hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})


def texts(log, event_type="chat.posted"):
    return [entry["data"]["text"] for entry in log if entry["kind"] == "event" and entry["type"] == event_type]


async def test_connects_as_a_guest_reports_states_identity_and_latency(chat_server, new_page):
    page = await sdk_page(new_page, chat_server.url)
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.record.states") == ["connecting", "open"]
    me = await page.evaluate("window.hub.me")
    assert me["anonymous"] is True
    assert me["user"].startswith("guest-")
    assert await page.evaluate("window.hub.hello.plugins") == ["chat"]

    rtt = await wait_js(page, "() => window.hub.rtt")  # the first ping goes out on open
    assert 0 < rtt < 5000
    assert await page.evaluate("window.record.rtts.length") >= 1

    await page.evaluate("window.hub.close()")
    assert await page.evaluate("window.record.states") == ["connecting", "open", "closed"]
    after_close = await page.evaluate("window.settle(window.hub.publish('chat:lobby', 'chat.send', {text: 'x'}))")
    assert (after_close["ok"], after_close["code"]) == (False, "closed")


async def test_a_token_goes_in_the_bearer_subprotocol_and_a_bad_one_stops_reconnecting(chat_server, new_page):
    token = chat_server.token("alice", name="Alice")
    page = await sdk_page(new_page, chat_server.url, token=token)
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.hub.me") == {"user": "alice", "name": "Alice", "anonymous": False}

    refused = await sdk_page(new_page, chat_server.url, token="not-a-jwt", **FAST_RECONNECT)
    detail = await wait_js(refused, "() => window.hub.state === 'closed' && window.record.details.at(-1)")
    assert detail["code"] == 4001  # AUTH_FAILED: the same token would fail again, so no reconnect loop
    assert "Invalid token" in detail["reason"]
    assert await refused.evaluate("window.record.states") == ["connecting", "closed"]


async def test_subscribe_gets_snapshot_presence_and_events_and_publish_resolves(chat_server, new_page, py_client):
    alice = await py_client(chat_server, user="alice", name="Alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "before you came"})

    page = await sdk_page(new_page, chat_server.url)
    await page.evaluate("window.follow('chat:lobby')")
    await wait_js(page, "() => (window.record.channels['chat:lobby'] || []).some(e => e.kind === 'snapshot')")
    log = await channel_log(page, "chat:lobby")
    subscribed = next(entry["info"] for entry in log if entry["kind"] == "subscribed")
    assert subscribed["resubscribed"] is False
    assert subscribed["reset"] is False
    assert subscribed["offset"] == 1
    snapshot = next(entry for entry in log if entry["kind"] == "snapshot")["snapshot"]
    assert [m["text"] for m in snapshot["messages"]] == ["before you came"]
    presence = next(entry for entry in log if entry["kind"] == "presence")
    assert sorted(m["user"] for m in presence["members"])[0] == "alice"
    assert len(presence["members"]) == 2
    guest = (await alice.next_event("chat:lobby", "chat.joined"))["data"]
    assert guest["user"] == await page.evaluate("window.hub.me.user")

    reply = await page.evaluate("window.hub.publish('chat:lobby', 'chat.send', {text: 'hello from the browser'})")
    assert reply["text"] == "hello from the browser"
    assert reply["author"]["user"] == guest["user"]
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"] == reply

    await alice.pub("chat:lobby", "chat.send", {"text": "hello from python"})
    await wait_js(page, "() => window.record.channels['chat:lobby'].filter(e => e.kind === 'event').length >= 2")
    log = await channel_log(page, "chat:lobby")
    assert texts(log) == ["hello from the browser", "hello from python"]
    assert [e["offset"] for e in log if e["kind"] == "event"] == [2, 3]

    # presence from the SDK's own list and from the presence op
    bob = await py_client(chat_server, user="bob", name="Bob")
    await bob.sub("chat:lobby")
    await wait_js(
        page, "() => window.record.channels['chat:lobby'].some(e => e.kind === 'presence' && e.change === 'joined')"
    )
    members = await page.evaluate("window.hub.presence('chat:lobby')")
    assert sorted(m["name"] for m in members if not m["user"].startswith("guest-")) == ["Alice", "Bob"]


async def test_a_refused_publish_rejects_with_the_code_and_the_sentence(chat_server, new_page, py_client):
    page = await sdk_page(new_page, chat_server.url)
    await wait_js(page, "() => window.hub.state === 'open'")

    invalid = await page.evaluate("window.settle(window.hub.publish('chat:lobby', 'chat.send', {text: '   '}))")
    assert invalid["ok"] is False
    assert invalid["isError"] is True
    assert invalid["isHubError"] is True
    assert invalid["name"] == "HubError"
    assert invalid["code"] == "invalid"
    assert invalid["message"] == "Invalid data for 'chat.send'."
    assert invalid["details"][0]["loc"] == ["text"]

    unknown = await page.evaluate("window.settle(window.hub.publish('chat:lobby', 'chat.shout', {}))")
    assert unknown["code"] == "unknown_type"

    alice = await py_client(chat_server, user="alice")
    posted = await alice.pub("chat:lobby", "chat.send", {"text": "mine"})
    not_yours = await page.evaluate(
        "(id) => window.settle(window.hub.publish('chat:lobby', 'chat.delete', {id}))", posted["id"]
    )
    assert (not_yours["code"], not_yours["message"]) == ("forbidden", "Only the author may change a message.")

    # the socket stays open after err replies
    assert await page.evaluate("window.hub.state") == "open"
    assert await page.evaluate("window.record.states") == ["connecting", "open"]


async def test_unsubscribe_stops_the_events_and_leaves_presence(chat_server, new_page, py_client):
    alice = await py_client(chat_server, user="alice")
    await alice.sub("chat:lobby")
    page = await sdk_page(new_page, chat_server.url)
    await page.evaluate("window.follow('chat:lobby'); window.follow('chat:other')")
    await wait_js(page, "() => window.record.channels['chat:other'].some(e => e.kind === 'subscribed')")
    await wait_js(page, "() => window.record.channels['chat:lobby'].some(e => e.kind === 'subscribed')")
    await alice.pub("chat:lobby", "chat.send", {"text": "one"})
    await wait_js(page, "() => window.record.channels['chat:lobby'].some(e => e.kind === 'event')")

    await page.evaluate("window.unfollow['chat:lobby']()")
    assert (await alice.next_event("chat:lobby", "chat.left"))["data"]["client"] == await page.evaluate(
        "window.hub.hello.client"
    )
    assert await page.evaluate("window.hub.channels") == ["chat:other"]

    # One send queue per connection: had the unsub not worked, "two" would arrive before "marker".
    await alice.pub("chat:lobby", "chat.send", {"text": "two"})
    await alice.pub("chat:other", "chat.send", {"text": "marker"})
    await wait_js(page, "() => window.record.channels['chat:other'].some(e => e.kind === 'event')")
    assert texts(await channel_log(page, "chat:lobby")) == ["one"]

    # the channel can be followed again, with a fresh snapshot
    await page.evaluate("window.follow('chat:lobby')")
    await wait_js(page, "() => window.record.channels['chat:lobby'].some(e => e.kind === 'snapshot')")
    snapshot = next(e for e in await channel_log(page, "chat:lobby") if e["kind"] == "snapshot")["snapshot"]
    assert [m["text"] for m in snapshot["messages"]] == ["one", "two"]


async def test_reconnects_after_a_restart_and_recovers_what_it_missed(hub_server, redis_url, new_page, py_client):
    """Two nodes on Redis: the browser's node stops, events go out through the other one meanwhile, the node
    comes back on the same port, and the SDK reconnects by itself and resubscribes with `since`."""
    prefix = f"b{uuid.uuid4().hex[:10]}"
    settings = {"redis_url": redis_url, "redis_prefix": prefix, "probe_interval": 0.1, "probe_timeout": 0.6}
    node_a = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **settings)
    node_b = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **settings)
    writer = await py_client(node_b, user="writer")

    page = await sdk_page(new_page, node_a.url, **FAST_RECONNECT)
    await page.evaluate("window.follow('chat:room')")
    await wait_js(page, "() => window.record.channels['chat:room'].some(e => e.kind === 'subscribed')")
    await writer.pub("chat:room", "chat.send", {"text": "seen live"})
    await wait_js(page, "() => window.record.channels['chat:room'].some(e => e.kind === 'event')")

    node_a.stop()
    detail = await wait_js(
        page, "() => window.hub.state === 'reconnecting' && window.record.details.find(d => d.state === 'reconnecting')"
    )
    # The hub's "going away"; rarely Chromium reports 1006 instead (the close frame lost as the TCP
    # connection goes down). Either way the SDK must reconnect, which is what this test is about.
    assert detail["code"] in (1001, 1006)
    for text in ("missed one", "missed two"):
        await writer.pub("chat:room", "chat.send", {"text": text})
    # While disconnected a publish waits in the offline queue (up to offlineQueue ms) instead of failing.
    await page.evaluate(
        """() => {
          window.queued = window.settle(window.hub.publish('chat:room', 'chat.send', {text: 'sent while away'}));
        }"""
    )

    node_a.start()
    await wait_js(page, "() => window.record.channels['chat:room'].filter(e => e.kind === 'subscribed').length === 2")
    log = await channel_log(page, "chat:room")
    again = [e["info"] for e in log if e["kind"] == "subscribed"][1]
    assert again["resubscribed"] is True
    assert again["recovered"] is True
    assert again["reset"] is False
    assert again["missed"] == 2
    assert [e for e in log if e["kind"] == "snapshot"][1:] == []  # recovered: no second snapshot

    sent = await page.evaluate("window.queued")
    assert sent["ok"] is True
    assert sent["data"]["text"] == "sent while away"
    await wait_js(page, "() => window.record.channels['chat:room'].filter(e => e.kind === 'event').length === 4")
    log = await channel_log(page, "chat:room")
    assert texts(log) == ["seen live", "missed one", "missed two", "sent while away"]
    assert [e["offset"] for e in log if e["kind"] == "event"] == [1, 2, 3, 4]
    states = await page.evaluate("window.record.states")
    assert states[:2] == ["connecting", "open"]
    assert states[-1] == "open"
    assert set(states[2:-1]) == {"reconnecting"}


async def test_a_restart_without_history_resets_from_the_snapshot(chat_server, new_page, py_client):
    """On the memory broker a restart starts a new stream: `recovered: false`, `reset: true` and the
    snapshot (chat keeps its messages in the store, which survives the restart)."""
    page = await sdk_page(new_page, chat_server.url, **FAST_RECONNECT)
    await page.evaluate("window.follow('chat:room')")
    await wait_js(page, "() => window.record.channels['chat:room'].some(e => e.kind === 'subscribed')")
    await page.evaluate("window.hub.publish('chat:room', 'chat.send', {text: 'kept in the store'})")

    chat_server.restart()
    await wait_js(page, "() => window.record.channels['chat:room'].filter(e => e.kind === 'snapshot').length === 2")
    log = await channel_log(page, "chat:room")
    again = [e["info"] for e in log if e["kind"] == "subscribed"][1]
    assert (again["resubscribed"], again["recovered"], again["reset"]) == (True, False, True)
    snapshot = [e for e in log if e["kind"] == "snapshot"][1]
    assert snapshot["reset"] is True
    assert [m["text"] for m in snapshot["snapshot"]["messages"]] == ["kept in the store"]


async def test_a_guest_stays_the_same_guest_across_a_restart_and_a_reload(chat_server, new_page):
    """The hello's resume token brings the guest back: same user and name, so its messages stay its own."""
    page = await sdk_page(new_page, chat_server.url, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open'")
    me = await page.evaluate("window.hub.me")
    assert me["anonymous"] is True
    await page.evaluate("window.follow('chat:mine')")
    await wait_js(page, "() => window.record.channels['chat:mine'].some(e => e.kind === 'subscribed')")
    posted = await page.evaluate("window.hub.publish('chat:mine', 'chat.send', {text: 'first'})")

    chat_server.restart()
    await wait_js(page, "() => window.record.channels['chat:mine'].filter(e => e.kind === 'subscribed').length === 2")
    assert await page.evaluate("window.hub.me") == me
    edit = "(id) => window.hub.publish('chat:mine', 'chat.edit', {id, text: 'mine'})"
    edited = await page.evaluate(edit, posted["id"])
    assert edited["text"] == "mine"  # the author check passed: still the same guest

    await page.reload()
    await page.evaluate(SDK_HARNESS, FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open'")
    assert await page.evaluate("window.hub.me") == me  # sessionStorage kept the resume token for this tab


async def test_a_silent_connection_is_detected_by_heartbeat_and_replaced(chat_server, new_page, py_client, proxy_to):
    """The network path dies without a close (a proxy drops every byte): the SDK notices the silence,
    fails the request in flight with `disconnected`, reconnects, and recovers the missed events."""
    proxy = await proxy_to(chat_server)
    writer = await py_client(chat_server, user="writer")
    page = await sdk_page(new_page, proxy.url, heartbeatTimeout=800, **FAST_RECONNECT)
    await page.evaluate("window.follow('chat:room')")
    await wait_js(page, "() => window.record.channels['chat:room'].some(e => e.kind === 'subscribed')")
    await writer.pub("chat:room", "chat.send", {"text": "before"})
    await wait_js(page, "() => window.record.channels['chat:room'].some(e => e.kind === 'event')")

    proxy.freeze()
    in_flight = await page.evaluate(
        """() => {
          window.lost = window.settle(window.hub.publish('chat:room', 'chat.send', {text: 'into the void'}));
          return window.hub.state;
        }"""
    )
    assert in_flight == "open"  # the SDK cannot know yet: the socket looks fine
    await writer.pub("chat:room", "chat.send", {"text": "missed"})

    detail = await wait_js(
        page, "() => window.hub.state === 'reconnecting' && window.record.details.find(d => d.state === 'reconnecting')"
    )
    assert detail["cause"] == "heartbeat"
    assert detail["code"] is None
    lost = await page.evaluate("window.lost")
    assert (lost["ok"], lost["code"]) == (False, "disconnected")

    proxy.thaw()
    await wait_js(page, "() => window.record.channels['chat:room'].filter(e => e.kind === 'subscribed').length === 2")
    await wait_js(page, "() => window.record.channels['chat:room'].filter(e => e.kind === 'event').length === 2")
    log = await channel_log(page, "chat:room")
    again = [e["info"] for e in log if e["kind"] == "subscribed"][1]
    assert (again["recovered"], again["missed"]) == (True, 1)
    assert texts(log) == ["before", "missed"]  # "into the void" never reached the hub
    assert await page.evaluate("window.hub.state") == "open"


async def test_the_complete_example_of_client_md_works(hub_server, new_page, py_client, tmp_path):
    """docs/client.md's example page, extracted and served by the hub (a plugin's static/ dir), so the doc
    cannot rot."""
    match = DOC_EXAMPLE.search(CLIENT_DOC.read_text())
    assert match is not None, "docs/client.md lost its chat-example.html block"
    static = tmp_path / "example" / "static"
    static.mkdir(parents=True)
    (static / "chat-example.html").write_text(match.group(1))
    example = type("Example", (Plugin,), {"static": str(static)})
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat, "example": example})
    alice = await py_client(server, user="alice", name="Alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "welcome"})
    await alice.next_event("chat:lobby", "chat.posted")

    page = await new_page(f"{server.url}/plugins/example/chat-example.html#token={server.token('bob', name='Bob')}")
    await expect(page.locator("#state")).to_have_text("open")
    await expect(page.locator("#me")).to_have_text("signed in as Bob")
    await expect(page.locator("#rtt")).to_have_text(re.compile(r"^\d+ ms$"))
    await expect(page.locator("#messages li")).to_have_text(["Alice: welcome"])
    await expect(page).to_have_title("2 here · Hub chat")

    await page.locator("#text").fill("hi Alice")
    await page.locator("#text").press("Enter")
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"]["text"] == "hi Alice"
    await expect(page.locator("#messages li")).to_have_text(["Alice: welcome", "Bob: hi Alice"])
    await expect(page.locator("#text")).to_have_value("")

    await alice.pub("chat:lobby", "chat.typing", {"active": True})
    await expect(page.locator("#typing")).to_have_text("Alice is typing…")
    typo = await alice.pub("chat:lobby", "chat.send", {"text": "tpyo"})
    await alice.pub("chat:lobby", "chat.edit", {"id": typo["id"], "text": "typo"})
    await expect(page.locator("#messages li")).to_have_text(["Alice: welcome", "Bob: hi Alice", "Alice: typo"])
    await alice.pub("chat:lobby", "chat.delete", {"id": typo["id"]})
    await expect(page.locator("#messages li")).to_have_count(2)

    await page.locator("#text").fill("   ")
    await page.locator("#text").press("Enter")
    await expect(page.locator("#error")).to_have_text("invalid: Invalid data for 'chat.send'.")
